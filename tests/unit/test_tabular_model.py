"""A MultiTaskModel on the tabular encoder: sharing strategies, save/load parity, prediction
from Python and over HTTP, and the refusal of layer-by-layer strategies (ONNX export: tests/unit/test_onnx_export.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from polytask import api
from polytask.config import parse_config
from polytask.data.batches import collate
from polytask.errors import ConfigError
from polytask.inference import predict_records, read_inputs
from polytask.models.multitask import MultiTaskModel
from polytask.training.setup import prepare
from tiny_models import recsys_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "recsys"


def load_generator():
    spec = importlib.util.spec_from_file_location("make_recsys_data", ROOT / "scripts" / "make_recsys_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recsys")
    load_generator().write(folder / "data", rows=300, seed=3)
    return folder / "data"


def logits(model: MultiTaskModel, features) -> dict[str, torch.Tensor]:
    tasks = list(model.tasks.values())
    batch = collate(features, tasks, model.tokenizer.pad_token_id, with_targets=False)
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


@pytest.mark.parametrize("sharing, tabular", [
    ("hard", {}), ({"name": "soft", "lambda": 0.1}, {}), ({"name": "mmoe", "experts": 3}, {}),
    ({"name": "ple", "experts": 1, "task_experts": 1}, {}),
    ("attention", {"attention_layers": 1}), ({"name": "hierarchical", "layers": {"click": 0}}, {}),
])
def test_sharing_strategies_train_on_tabular_rows(data_dir, tmp_path, sharing, tabular):
    prepared = prepare(parse_config(recsys_config(data_dir, tmp_path, sharing, **tabular)))
    model = prepared.model.train()
    features = prepared.features["train"]["impressions"][:16]
    tasks = list(model.tasks.values())
    batch = collate(features, tasks, model.tokenizer.pad_token_id)
    out = model(batch["input_ids"], batch["attention_mask"])
    loss = sum(t.loss(out[t.name], batch["targets"][t.name], batch["present"][t.name], None) for t in tasks)
    loss.backward()
    assert model.encoder.embeddings.weight.grad.abs().sum() > 0
    assert {name: tuple(v.shape) for name, v in out.items()} == {"click": (16, 2), "conversion": (16, 2)}


@pytest.mark.parametrize("sharing, message", [
    ("cross_stitch", "supports BERT-like encoders"),
    ({"name": "hard", "freeze_layers": 1}, "supports BERT-like encoders"),
    ("lora", "options.target_modules"),
])
def test_layer_by_layer_strategies_refuse_the_tabular_encoder(data_dir, tmp_path, sharing, message):
    with pytest.raises(ConfigError, match=message):
        prepare(parse_config(recsys_config(data_dir, tmp_path, sharing)))


def test_save_load_parity_and_predict(data_dir, tmp_path):
    from polytask.training.trainer import train

    config = parse_config(recsys_config(data_dir, tmp_path / "run", {"name": "ple", "experts": 1}))
    prepared = prepare(config)
    train(config, prepared=prepared)
    model = prepared.model.eval()
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    loaded = MultiTaskModel.from_pretrained(saved)
    assert json.loads((saved / "encoder" / "config.json").read_text())["model_type"] == "polytask_tabular"
    test = prepared.features["test"]["impressions"]
    before, after = logits(model, test), logits(loaded, test)
    assert all(torch.equal(before[name], after[name]) for name in before)

    records = read_inputs(data_dir / "predict.jsonl", loaded.tokenizer)
    from_file = predict_records(loaded, records)
    rows = [json.loads(line) for line in (data_dir / "predict.jsonl").read_text().splitlines()]
    assert api.predict(saved, rows) == from_file and len(from_file) == 5
    probability = from_file[0]["click"]["scores"]["1"]
    assert 0 < probability < 1 and from_file[0]["click"]["label"] in ("0", "1")



def test_http_server_takes_feature_rows(data_dir, tmp_path):
    from fastapi.testclient import TestClient

    from polytask.serving import create_app

    prepared = prepare(parse_config(recsys_config(data_dir, tmp_path)))
    model = prepared.model.eval()
    row = json.loads((data_dir / "predict.jsonl").read_text().splitlines()[0])
    with TestClient(create_app(predictor=model)) as client:
        ok = client.post("/predict", json={"inputs": [{"features": row}, {"features": {"user_id": "new"}}]})
        assert ok.status_code == 200, ok.text
        body = ok.json()
        assert body["truncated"] == [False, False] and set(body["predictions"][0]) == {"click", "conversion"}
        expected = predict_records(model, model.tokenizer.records_from_rows([row]))[0]
        assert body["predictions"][0] == expected
        text = client.post("/predict", json={"inputs": ["a text"]})
        assert text.status_code == 422 and "this model takes" in text.text
        bad = client.post("/predict", json={"inputs": [{"features": {**row, "price": "cheap"}}]})
        assert bad.status_code == 422 and "<request>:1: [price]" in bad.json()["detail"]
        assert client.get("/metadata").json()["model"]["encoder_type"] == "polytask_tabular"


def test_resumed_tabular_run_is_bit_identical(data_dir, tmp_path, caplog):
    """Resume rebuilds the vocabulary from the same train data and the encoder from the seed,
    then loads the checkpoint: the run ends exactly where an unbroken one does."""
    import shutil

    from safetensors.torch import load_file

    from polytask.training.trainer import train

    def run(out: Path, resume: bool = False) -> None:
        raw = recsys_config(data_dir, out, {"name": "mmoe", "experts": 2})
        raw["train"].update(max_steps=6, checkpoint_every=2, keep_checkpoints=3)
        train(parse_config(raw), resume=resume)

    run(tmp_path / "unbroken")
    shutil.copytree(tmp_path / "unbroken", tmp_path / "resumed")
    for step in (4, 6):
        shutil.rmtree(tmp_path / "resumed" / "checkpoints" / f"step-{step:08d}")
    with caplog.at_level("INFO"):
        run(tmp_path / "resumed", resume=True)
    assert "step-00000002 (step 2)" in caplog.text  # resumed from the second-newest checkpoint
    final = "checkpoints/step-00000006/model.safetensors"
    expected, actual = load_file(str(tmp_path / "unbroken" / final)), load_file(str(tmp_path / "resumed" / final))
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[k], actual[k]) for k in expected)
