"""The HTTP server: every task of a saved model from one encoder pass per micro-batch.

    POST /predict   {"inputs": ["text", {"text": ...}, {"tokens": [...]}], "tasks": [...]?}
    GET  /health    liveness, queue depth
    GET  /metadata  tasks (type, labels) and model (encoder type, hidden size, max_length, size)
    GET  /docs      OpenAPI UI (FastAPI)

The model is loaded once, when the app is created; requests are grouped by ``MicroBatcher``.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from polytask.extras import require

require("serve", "fastapi", feature="the polytask HTTP server")

from fastapi import FastAPI, HTTPException, Request  # noqa: E402 - after the check above
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from polytask.models.predictor import Predictor
from polytask.serving.batcher import MicroBatcher, Overloaded, RequestFailed
from polytask.serving.metadata import metadata
from polytask.serving.runner import run_jobs
from polytask.serving.schema import Limits, PredictRequest, PredictResponse, limit_problem, to_records

log = logging.getLogger(__name__)

#: Seconds a client refused with 503 should wait; a full queue drains in well under that.
RETRY_AFTER = "1"


def load_predictor(model_dir: str | Path, onnx: bool = False, num_threads: int | None = None) -> Predictor:
    """A saved model directory (PyTorch), or with ``onnx`` a directory from ``polytask export``."""
    if onnx:
        from polytask.serving.onnx_model import OnnxModel

        return OnnxModel(model_dir, num_threads=num_threads)
    from polytask.inference import load_model

    return load_model(model_dir)


def create_app(model_dir: str | Path | None = None, *, onnx: bool = False, max_batch: int = 32,
               max_wait_ms: float = 5, max_queue: int = 256, max_inputs: int = 64,
               max_chars: int = 2000, predictor: Predictor | None = None) -> FastAPI:
    """The FastAPI app serving ``model_dir``; pass ``predictor`` instead to serve an already
    loaded model (any Predictor: MultiTaskModel, OnnxModel, or a test double)."""
    if predictor is None:
        if model_dir is None:
            raise ValueError("create_app needs model_dir or predictor")
        predictor = load_predictor(model_dir, onnx)
    batcher = MicroBatcher(partial(run_jobs, predictor), max_batch, max_wait_ms, max_queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        log.info("serving tasks %s (micro-batches of up to %d inputs, queue %d)",
                 list(predictor.tasks), max_batch, max_queue)
        yield
        await batcher.stop()

    app = FastAPI(title="polytask", lifespan=lifespan,
                  description="Every task of a multi-task model from one encoder pass.")
    app.state.predictor, app.state.batcher = predictor, batcher
    app.state.limits = Limits(max_inputs=max_inputs, max_chars=max_chars)
    app.add_api_route("/predict", predict, methods=["POST"], response_model=PredictResponse,
                      responses={413: {"description": "too many or too long inputs"},
                                 422: {"description": "invalid body, unreadable input or unknown task"},
                                 500: {"description": "a server fault, for this request only"},
                                 503: {"description": "overloaded; retry after Retry-After s"}})
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/metadata", model_metadata, methods=["GET"])
    return app


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 without echoing the input back: a body such as ``Infinity`` cannot be written as
    JSON, which turned FastAPI's default 422 into a 500 (found by fuzzing)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
              for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": errors})


async def predict(body: PredictRequest, request: Request) -> Any:
    """Predictions of every requested task (all by default) for each input."""
    state = request.app.state
    if problem := limit_problem(body, state.limits):
        raise HTTPException(status_code=413, detail=problem)
    known = list(state.predictor.tasks)
    tasks = list(dict.fromkeys(body.tasks)) if body.tasks else known
    if unknown := [t for t in tasks if t not in known]:
        raise HTTPException(status_code=422, detail={
            "message": f"unknown task(s) {unknown}; this model has {known}", "tasks": known})
    try:
        records = to_records(body, state.predictor.tokenizer)
    except ValueError as exc:  # inputs that do not fit the model (text vs tabular feature rows)
        raise HTTPException(status_code=422, detail=str(exc)) from None
    try:
        return await state.batcher.submit(records, tasks)
    except Overloaded as exc:
        return JSONResponse(status_code=503, headers={"Retry-After": RETRY_AFTER},
                            content={"detail": f"server busy: {exc}; retry after {RETRY_AFTER} s"})
    except RequestFailed as exc:  # this request's own failure; its batch mates were answered
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})


async def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "waiting": request.app.state.batcher.waiting}


async def model_metadata(request: Request) -> dict[str, Any]:
    """The tasks (type, label set) and the model (encoder type, hidden size, max_length, size)."""
    return metadata(request.app.state.predictor)
