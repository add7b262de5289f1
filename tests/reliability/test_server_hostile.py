"""Hostile clients: fuzzed request bodies always get a 4xx, never a 5xx; a slow client does
not hold up others; concurrent clients all get answers."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parents[1]))
from tiny_models import train_every_task  # noqa: E402

from polytask.serving import create_app  # noqa: E402

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


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_encoder):
    torch.set_num_threads(1)
    return create_app(train_every_task(tmp_path_factory.mktemp("hostile"), tiny_encoder),
                      max_inputs=16, max_chars=500)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_fuzzed_bodies_never_cause_a_server_error(app, body):
    with TestClient(app) as client:
        response = client.post("/predict", content=json.dumps(body),
                               headers={"content-type": "application/json"})
    assert response.status_code < 500, (body, response.text)
    if response.status_code == 200:
        assert len(response.json()["predictions"]) == len(body["inputs"])


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[]" * 1000, b'{"inputs": "x"}'])
def test_malformed_payloads_are_4xx(app, raw):
    with TestClient(app) as client:
        response = client.post("/predict", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500


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
