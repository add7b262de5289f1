"""The HTTP server: one response with every task, limits, overload, metadata, ONNX, the CLI."""

from __future__ import annotations

import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient
from tiny_models import sample_records, train_every_task

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, start  # noqa: E402

from polytask.data.records import Record
from polytask.inference import load_model, predict_records
from polytask.serving import create_app
from polytask.serving.onnx_export import export_onnx

TASKS = ["color", "animals", "size", "tags", "tags_plain"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_encoder) -> Path:
    torch.set_num_threads(1)
    return train_every_task(tmp_path_factory.mktemp("serve"), tiny_encoder)


@pytest.fixture(scope="module")
def client(model_dir):
    with TestClient(create_app(model_dir, max_inputs=8, max_chars=300)) as test_client:
        yield test_client


def as_json(records):
    return [{"tokens": r.words} if r.words is not None else r.text for r in records]


class Recording:
    """A predictor double: the real model, plus a delay and a log of batch sizes."""

    def __init__(self, model, delay: float = 0.0) -> None:
        self.model, self.delay, self.batches = model, delay, []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, input_ids, *args, **kwargs):
        self.batches.append(int(input_ids.shape[0]))
        time.sleep(self.delay)
        return self.model(input_ids, *args, **kwargs)


def test_every_task_in_one_response_equals_predict(client, model_dir):
    records = sample_records()
    response = client.post("/predict", json={"inputs": as_json(records)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["truncated"] == [False] * len(records)
    assert body["predictions"] == predict_records(load_model(model_dir, "cpu"), sample_records())
    assert all(list(p) == TASKS for p in body["predictions"])


def test_task_subset_and_text_objects(client):
    response = client.post("/predict", json={"inputs": [{"text": "a red cat"}, "blue dog"],
                                             "tasks": ["tags", "color"]})
    assert response.status_code == 200, response.text
    for prediction in response.json()["predictions"]:
        assert set(prediction) == {"tags", "color"}
    assert len(response.json()["predictions"][0]["tags"]["tags"]) == 3


def test_one_text_alone_is_one_input_with_located_entities(client, model_dir):
    text = "a red cat, a red cat"
    response = client.post("/predict", json={"inputs": text})
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction == predict_records(load_model(model_dir, "cpu"), [Record("<inputs>", 1, text=text)])[0]
    for entity in prediction["tags"].get("entities", []):  # offsets index the text sent
        assert text[entity["start"]:entity["end"]] == entity["word"] and 0 < entity["score"] <= 1


@pytest.mark.parametrize("body", [
    {"inputs": ["a red cat"], "extra": 1},             # unknown key
    {},                                                # no inputs
    {"inputs": []},                                    # empty list
    {"inputs": [5]},                                   # not text
    {"inputs": [{"text": "a", "tokens": ["a"]}]},      # ambiguous object
    {"inputs": [{"txt": "a"}]},                        # typo
    {"inputs": ["   "]},                               # blank
    {"inputs": ["a"], "tasks": "color"},               # tasks not a list
])
def test_schema_errors_are_422(client, body):
    assert client.post("/predict", json=body).status_code == 422


def test_unknown_task_is_422_with_task_list(client):
    response = client.post("/predict", json={"inputs": ["a red cat"], "tasks": ["colour"]})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "colour" in detail["message"] and detail["tasks"] == TASKS


def test_oversize_requests_are_413(client):
    too_many = client.post("/predict", json={"inputs": ["a red cat"] * 9})
    assert too_many.status_code == 413 and "limit is 8" in too_many.json()["detail"]
    too_long = client.post("/predict", json={"inputs": ["ok", "red " * 100]})
    assert too_long.status_code == 413 and "inputs[1]" in too_long.json()["detail"]


def test_inputs_longer_than_max_length_are_truncated_and_flagged(client):
    words = ("the big red dog near the tree " * 6).split()  # 42 words > max_length 32 tokens
    response = client.post("/predict", json={"inputs": [{"tokens": words}, " ".join(words), "red cat"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["truncated"] == [True, True, False]
    # One tag per input word: the words the model never read (cut off) are tagged "O"; the
    # flag tells the client that the tail was cut.
    for row in (0, 1):
        tags = body["predictions"][row]["tags"]["tags"]
        assert len(tags) == len(words) and tags[-1] == "O"


def test_metadata_and_health(client):
    meta = client.get("/metadata").json()
    assert [t["name"] for t in meta["tasks"]] == TASKS
    by_name = {t["name"]: t for t in meta["tasks"]}
    assert by_name["color"]["type"] == "classification" and by_name["color"]["labels"] == ["blue", "green", "red"]
    assert by_name["size"]["labels"] is None and by_name["size"]["higher_is_better"] is False
    assert by_name["tags"]["crf"] is True and by_name["tags_plain"]["crf"] is False
    assert meta["model"]["encoder_type"] == "bert" and meta["model"]["hidden_size"] == 32
    assert meta["model"]["max_length"] == 32 and meta["model"]["parameters"] > 1000
    assert client.get("/health").json()["status"] == "ok"
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_concurrent_requests_share_micro_batches(model_dir):
    recording = Recording(load_model(model_dir, "cpu"), delay=0.05)
    app = create_app(predictor=recording, max_batch=16, max_wait_ms=200)
    with TestClient(app) as test_client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: test_client.post("/predict", json={"inputs": [f"red cat {i}"]})
                              .status_code, range(8)))
    assert codes == [200] * 8
    assert max(recording.batches) > 1 and sum(recording.batches) == 8


def test_full_queue_is_503_with_retry_after(model_dir):
    slow = Recording(load_model(model_dir, "cpu"), delay=0.5)
    app = create_app(predictor=slow, max_batch=1, max_wait_ms=0, max_queue=1)
    with TestClient(app) as test_client, ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda i: test_client.post("/predict", json={"inputs": ["red cat"]}),
                                  range(6)))
    codes = sorted(r.status_code for r in responses)
    assert 503 in codes and 200 in codes and set(codes) <= {200, 503}
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["Retry-After"] == "1" and "busy" in refused.json()["detail"]


def test_onnx_server_gives_the_same_labels(model_dir, tmp_path):
    onnx_dir = export_onnx(model_dir, tmp_path / "onnx")
    body = {"inputs": as_json(sample_records())}
    with TestClient(create_app(model_dir)) as torch_client, \
            TestClient(create_app(onnx_dir, onnx=True)) as onnx_client:
        expected = torch_client.post("/predict", json=body).json()
        got = onnx_client.post("/predict", json=body).json()
        assert onnx_client.get("/metadata").json()["model"]["runtime"] == "onnxruntime"
    assert got["truncated"] == expected["truncated"]
    for want, have in zip(expected["predictions"], got["predictions"]):
        assert have["color"]["label"] == want["color"]["label"]
        assert have["animals"]["labels"] == want["animals"]["labels"]
        assert have["tags"] == want["tags"] and have["tags_plain"] == want["tags_plain"]
        assert have["size"]["prediction"] == pytest.approx(want["size"]["prediction"], abs=1e-4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_cli_export_then_serve_onnx(model_dir, tmp_path):
    exported = polytask("export", model_dir, "--onnx", tmp_path / "onnx")
    assert exported.returncode == 0, exported.stderr
    port = free_port()
    server = start("serve", tmp_path / "onnx", "--onnx", "--port", port)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        response = httpx.post(f"{url}/predict", json={"inputs": ["a red cat"]}, timeout=30)
        assert response.status_code == 200 and list(response.json()["predictions"][0]) == TASKS
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli_serve_bad_model_dir_is_exit_2(tmp_path):
    result = polytask("serve", tmp_path, "--onnx")
    assert result.returncode == 2 and "polytask export" in result.stderr

