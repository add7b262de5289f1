"""Hostile clients: fuzzed request bodies always get a 4xx, never a 5xx; a slow client does
not hold up others; concurrent clients all get answers; a real HTTP server (PyTorch and ONNX)
answers every good client of a crowd of hostile ones, with no 5xx and no traceback."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny_models import train_every_task  # noqa: E402

from polytask.serving import create_app  # noqa: E402
from polytask.serving.onnx_export import export_onnx  # noqa: E402

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"inputs": JSON}),
    st.fixed_dictionaries({"inputs": st.lists(JSON, max_size=4), "tasks": JSON}),
    st.fixed_dictionaries({"inputs": st.lists(st.text(max_size=3000), max_size=80)}),
)


#: Any code point: lone surrogates (valid JSON as "\\ud800", not Unicode), controls, NUL,
#: zero-width and combining characters, unassigned and private-use ones (hypothesis leaves
#: surrogates out of st.text unless asked).
ANY_CHAR = st.characters(exclude_categories=()) | st.characters(categories=["Cs", "Cc", "Cf", "Mn", "Zs"])
TEXTS = st.text(ANY_CHAR, min_size=1, max_size=30)
#: Well-formed bodies (so most reach the model) whose every text is drawn from ANY_CHAR.
TEXT_BODIES = st.fixed_dictionaries({"inputs": st.lists(st.one_of(
    TEXTS, st.fixed_dictionaries({"text": TEXTS}, optional={"text_pair": TEXTS}),
    st.fixed_dictionaries({"tokens": st.lists(TEXTS, min_size=1, max_size=4)})), min_size=1, max_size=4)},
    optional={"tasks": st.lists(st.sampled_from(["color", "tags", "size"]), min_size=1, max_size=2)})


def n_inputs(body: dict) -> int:
    """How many predictions a body asks for: a single string is one input."""
    return 1 if isinstance(body["inputs"], str) else len(body["inputs"])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_encoder):
    torch.set_num_threads(1)
    return train_every_task(tmp_path_factory.mktemp("hostile"), tiny_encoder)


@pytest.fixture(scope="module")
def app(model_dir):
    return create_app(model_dir, max_inputs=16, max_chars=500)


@pytest.fixture(scope="module", params=["torch", "onnx"])
def backend_app(request, model_dir, tmp_path_factory):
    if request.param == "torch":
        return create_app(model_dir, max_inputs=16, max_chars=500, max_wait_ms=50)
    exported = export_onnx(model_dir, tmp_path_factory.mktemp("hostile-onnx") / "onnx")
    return create_app(exported, onnx=True, max_inputs=16, max_chars=500, max_wait_ms=50)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_fuzzed_bodies_never_cause_a_server_error(app, body):
    with TestClient(app) as client:
        response = client.post("/predict", content=json.dumps(body),
                               headers={"content-type": "application/json"})
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 200:
        assert len(response.json()["predictions"]) == n_inputs(body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=TEXT_BODIES)
def test_fuzzed_texts_never_cause_a_server_error(backend_app, body):
    """Every code point, on both backends: a 4xx or an answer, never a 5xx or a traceback."""
    with TestClient(backend_app) as client:
        response = client.post("/predict", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code < 500 and "Traceback" not in response.text, (body, response.text)
    if response.status_code == 200:
        assert len(response.json()["predictions"]) == n_inputs(body)


#: Bodies that are not valid JSON, not UTF-8, too deep, or carry numbers Python cannot hold.
MALFORMED = [
    b"", b"{", b"\xff\xfe", b"[]" * 1000, b'{"inputs": 5}',  # a single string is one input now (test_serving)
    b'{"inputs": ["caf\xc3"]}', b'{"inputs": ["\xff\xfe\xfd"]}', b'{"inputs": ["\xc0\xaf"]}',
    b'{"inputs": ["\xed\xa0\x80"]}',                               # a surrogate encoded as UTF-8
    b"[" * 100_000 + b"]" * 100_000,
    b'{"inputs": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
    b'{"inputs": [{"tokens": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}]}",
    b'{"inputs": [1' + b"0" * 5000 + b"]}", b'{"inputs": ["a"], "tasks": [1' + b"0" * 5000 + b"]}",
    b'{"inputs": [1e999]}', b'{"inputs": [NaN]}', b'{"inputs": ["a"], "tasks": [-Infinity]}',
    b'{"inputs": [{"text": "a", "\\ud800": 1}]}', b'{"inputs": ["a"], "tasks": ["\\udfff"]}',
]


@pytest.mark.parametrize("raw", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_payloads_are_4xx(app, raw):
    with TestClient(app) as client:
        response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 and "Traceback" not in response.text, response.text


def test_a_single_string_is_one_input_with_the_same_answer(backend_app):
    with TestClient(backend_app) as client:
        one = client.post("/predict", json={"inputs": "a red cat"})
        listed = client.post("/predict", json={"inputs": ["a red cat"]})
    assert one.status_code == listed.status_code == 200, one.text
    assert one.json()["predictions"] == listed.json()["predictions"]


def test_slow_client_does_not_block_others(app):
    """A client that trickles its body in slowly must not delay fast clients' answers."""

    async def scenario() -> tuple[bool, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            async def slow_body():
                yield b'{"inputs": ['
                await asyncio.sleep(2.0)
                yield b'"red cat"]}'

            slow = asyncio.create_task(client.post("/predict", content=slow_body(),
                                                   headers={"content-type": "application/json"}))
            await asyncio.sleep(0.1)
            fast = await asyncio.gather(*[client.post("/predict", json={"inputs": ["a blue dog"]})
                                          for _ in range(5)])
            slow_still_sending = not slow.done()
            assert (await slow).status_code == 200
            return slow_still_sending, [r.status_code for r in fast]

    async def run_with_lifespan():
        async with app.router.lifespan_context(app):
            return await scenario()

    slow_still_sending, codes = asyncio.run(run_with_lifespan())
    assert codes == [200] * 5
    assert slow_still_sending  # the fast clients were answered before the slow body ended


def test_concurrent_clients_all_answered(app):
    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*[client.post("/predict", json={"inputs": ["red cat", "a dog"]})
                                               for _ in range(50)])
            return [r.status_code for r in responses]

    async def run_with_lifespan():
        async with app.router.lifespan_context(app):
            return await scenario()

    codes = asyncio.run(run_with_lifespan())
    assert all(code in (200, 503) for code in codes) and codes.count(200) >= 45


@pytest.fixture(scope="module")
def live_url(backend_app):
    """``backend_app`` behind a real uvicorn server on a free port (a thread of this process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(backend_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started and thread.is_alive() and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


GOOD = [{"inputs": ["a red cat"]}, {"inputs": [{"tokens": ["the", "big", "dog"]}], "tasks": ["tags", "color"]},
        {"inputs": ["blue bird", {"text": "green dog near the tree"}]}]
BAD = [b'{"inputs": ["red \\ud800 cat"]}', b'{"inputs": [{"tokens": ["\\udfff"]}]}',
       b'{"inputs": ["nul \\u0000"]}', b'{"inputs": ["\\u200b"]}', b'{"inputs": ["caf\xc3"]}',
       b"[" * 50_000, b'{"inputs": [1' + b"0" * 5000 + b"]}", b'{"inputs": ["a"], "tasks": ["nosuch"]}',
       json.dumps({"inputs": ["red " * 200]}).encode(), json.dumps({"inputs": ["a"] * 17}).encode()]


def rounded(value):
    if isinstance(value, float):
        return round(value, 5)  # a padded batch may differ from a lone input in the last bits
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return [rounded(v) for v in value] if isinstance(value, list) else value


def test_live_server_answers_good_clients_among_hostile_ones(live_url):
    """3 rounds of 12 good and 10 hostile clients at once over real HTTP: every good one gets
    200 and its answer alone, every hostile one a 4xx; no 5xx, no reset, no traceback."""
    post = {"url": f"{live_url}/predict", "headers": {"content-type": "application/json"}}
    alone = [rounded(httpx.post(content=json.dumps(body), **post).json()) for body in GOOD]
    goods = [json.dumps(GOOD[i % len(GOOD)]).encode() for i in range(12)]
    mixed = [raw for i, good in enumerate(goods) for raw in (good, *BAD[i:i + 1])]  # interleaved

    async def crowd() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return list(await asyncio.gather(*(client.post(content=raw, **post) for raw in mixed)))

    for _ in range(3):
        responses = asyncio.run(crowd())
        assert not any("Traceback" in r.text for r in responses)
        good = [r for raw, r in zip(mixed, responses) if raw in goods]
        hostile = [r for raw, r in zip(mixed, responses) if raw not in goods]
        assert [r.status_code for r in good] == [200] * 12, [r.text for r in good if r.status_code != 200]
        assert [rounded(r.json()) for r in good] == [alone[i % len(GOOD)] for i in range(12)]
        assert len(hostile) == len(BAD) and all(400 <= r.status_code < 500 for r in hostile), \
            [(r.status_code, r.text[:200]) for r in hostile]
