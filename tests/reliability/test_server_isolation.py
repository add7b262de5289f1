"""One bad request never fails another: unreadable inputs are 422 naming ``inputs[i]`` before
they join a micro-batch, and a batch that fails anyway is re-run request by request, so every
good request in it gets the answer it gets alone (PyTorch and ONNX servers alike)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny_models import train_every_task  # noqa: E402

from polytask.inference import load_model  # noqa: E402
from polytask.serving import create_app  # noqa: E402
from polytask.serving.onnx_export import export_onnx  # noqa: E402

GOOD = [{"inputs": ["a red cat"]}, {"inputs": [{"tokens": ["the", "big", "dog"]}]},
        {"inputs": ["blue bird", {"text": "green dog"}]}, {"inputs": ["red cat near the tree"], "tasks": ["color"]}]

#: (raw JSON body, what the 422 must name). Raw strings: json.dumps would not write these escapes.
UNREADABLE = [
    ('{"inputs": ["red \\ud800 cat"]}', "inputs[0] has a lone UTF-16 surrogate U+D800 at character 4"),
    ('{"inputs": [{"tokens": ["\\udfff"]}]}', "inputs[0].tokens[0] has a lone UTF-16 surrogate U+DFFF"),
    ('{"inputs": ["ok", {"text": "a", "text_pair": "\\udc00b"}]}', "inputs[1].text_pair has a lone"),
    ('{"inputs": ["red \\u0000 cat"]}', "inputs[0] has a NUL character (U+0000) at character 4"),
    ('{"inputs": [{"tokens": ["red", " "]}]}', "inputs[0].tokens[1] is blank"),
    ('{"inputs": ["ok", "\\u200b\\u200d"]}', "inputs[1] has no token left after the tokenizer's normalisation"),
    ('{"inputs": [{"tokens": ["\\ufeff"]}]}', "inputs[0].tokens has no token left"),
    ('{"inputs": ["\\u0301"]}', "inputs[0] has no token left"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_encoder) -> Path:
    torch.set_num_threads(1)
    return train_every_task(tmp_path_factory.mktemp("isolation"), tiny_encoder)


@pytest.fixture(scope="module", params=["torch", "onnx"])
def backend(request, model_dir, tmp_path_factory) -> dict[str, Any]:
    if request.param == "torch":
        return {"model_dir": model_dir}
    return {"model_dir": export_onnx(model_dir, tmp_path_factory.mktemp("onnx") / "onnx"), "onnx": True}


def serve(bodies: list[Any], concurrent: bool = True, **app_options: Any) -> list[httpx.Response]:
    """POST each body (a dict, or a raw JSON string) to a fresh app; all at once or in turn."""
    app = create_app(**{"max_batch": 64, "max_wait_ms": 100, **app_options})

    async def post(client: httpx.AsyncClient, body: Any) -> httpx.Response:
        raw = body if isinstance(body, str) else json.dumps(body)
        return await client.post("/predict", content=raw, headers={"content-type": "application/json"})

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a fault is a 500
        async with app.router.lifespan_context(app), \
                httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if concurrent:
                return list(await asyncio.gather(*(post(client, body) for body in bodies)))
            return [await post(client, body) for body in bodies]

    return asyncio.run(scenario())


def rounded(value: Any) -> Any:
    """Floats to 5 places: a padded batch may differ from a lone input in the last bits."""
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


@pytest.mark.parametrize(("body", "named"), UNREADABLE)
def test_unreadable_input_is_422_naming_it(backend, body, named):
    (response,) = serve([body], **backend)
    assert response.status_code == 422, response.text
    assert named in response.text and "Traceback" not in response.text


def test_bad_request_among_concurrent_good_ones(backend):
    """12 good requests and one bad one per round, 3 rounds, sent at once: the bad one gets its
    422, every good one the same answer it gets alone (before the fix: 500s for its batch)."""
    goods = [GOOD[i % len(GOOD)] for i in range(12)]
    alone = [rounded(r.json()) for r in serve(GOOD, concurrent=False, **backend)]
    for bad, _ in UNREADABLE[:3]:
        responses = serve([*goods[:6], bad, *goods[6:]], **backend)
        assert responses[6].status_code == 422, responses[6].text
        good = responses[:6] + responses[7:]
        assert [r.status_code for r in good] == [200] * 12, [r.text for r in good if r.status_code != 200]
        assert [rounded(r.json()) for r in good] == [alone[i % len(GOOD)] for i in range(12)]


class FailsOnMask:
    """A predictor double with a genuine server fault: its forward pass raises whenever a batch
    holds the [MASK] token, so any batch holding that request fails as a whole."""

    def __init__(self, model) -> None:
        self.model, self.mask_id, self.calls = model, model.tokenizer.mask_token_id, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, input_ids, *args, **kwargs):
        self.calls += 1
        if bool((input_ids == self.mask_id).any()):
            raise RuntimeError("simulated kernel failure")
        return self.model(input_ids, *args, **kwargs)


def test_failed_batch_is_rerun_so_only_the_faulty_request_fails(model_dir):
    model = load_model(model_dir, "cpu")
    alone = [rounded(r.json()) for r in serve(GOOD, concurrent=False, predictor=model)]
    goods = [GOOD[i % len(GOOD)] for i in range(12)]
    double = FailsOnMask(model)
    responses = serve([*goods[:6], {"inputs": ["a [MASK] cat"]}, *goods[6:]], predictor=double)
    assert responses[6].status_code == 500 and "server fault" in responses[6].json()["detail"]
    assert "Traceback" not in responses[6].text and "simulated" not in responses[6].text
    good = responses[:6] + responses[7:]
    assert [r.status_code for r in good] == [200] * 12, [r.text for r in good if r.status_code != 200]
    assert [rounded(r.json()) for r in good] == [alone[i % len(GOOD)] for i in range(12)]
    assert double.calls > 1  # the batch failed once, then its requests ran on their own


def test_tokens_and_text_in_one_batch_for_sentence_tasks_only(backend):
    """A pre-split input next to a text, with no token task asked for: the truncation flags
    read words for both (before the fix a local name shadowed ``split_words``: a 500)."""
    bodies = [{"inputs": [{"tokens": ["red", "cat"]}], "tasks": ["color"]},
              {"inputs": ["blue dog"], "tasks": ["color", "size"]}]
    responses = serve(bodies, **backend)
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    (mixed,) = serve([{"inputs": [{"tokens": ["red", "cat"]}, "blue dog"], "tasks": ["color"]}], **backend)
    assert mixed.status_code == 200 and mixed.json()["truncated"] == [False, False]


def test_texts_with_and_without_a_pair_in_one_batch(backend):
    """One tokenizer call cannot mix single texts and pairs (found by fuzzing: a 500 for the
    whole request, and for every request batched with it); each kind gets its answer alone."""
    pair, single = {"text": "red cat", "text_pair": "a dog"}, "blue bird"
    alone = [rounded(r.json()["predictions"][0]) for r in
             serve([{"inputs": [pair], "tasks": ["color"]}, {"inputs": [single], "tasks": ["color"]}],
                   concurrent=False, **backend)]
    (mixed,) = serve([{"inputs": [single, pair, single], "tasks": ["color", "size"]}], **backend)
    assert mixed.status_code == 200, mixed.text
    assert [rounded(p["color"]) for p in mixed.json()["predictions"]] == \
        [alone[1]["color"], alone[0]["color"], alone[1]["color"]]
