"""Serving every task of a model over HTTP (FastAPI) and exporting it to ONNX.

Needs the ``serve`` extra (fastapi, uvicorn) and, for ONNX, the ``onnx`` extra. The app is
imported on first use, so ``polytask export --onnx`` (which reads ``serving.metadata``) works
without the ``serve`` extra.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "load_predictor"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from polytask.serving import app

        return getattr(app, name)
    raise AttributeError(f"module 'polytask.serving' has no attribute {name!r}")
