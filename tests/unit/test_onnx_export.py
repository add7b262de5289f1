"""The ONNX export computes the same logits as PyTorch, and predicts through the same code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import sample_records, train_every_task

from polytask.data.batches import collate
from polytask.data.features import build_features
from polytask.errors import ModelDirError
from polytask.inference import predict_records
from polytask.models.multitask import MultiTaskModel
from polytask.serving.onnx_export import OnnxModel, export_onnx


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_encoder):
    folder = tmp_path_factory.mktemp("onnx")
    torch.set_num_threads(1)
    model_dir = train_every_task(folder, tiny_encoder)
    return model_dir, export_onnx(model_dir, folder / "onnx")


def batch_of(model, records):
    tasks = list(model.tasks.values())
    features = build_features(records, tasks, model.tokenizer, model.config.max_length, False)
    return collate(features, tasks, model.tokenizer.pad_token_id, with_targets=False)


@pytest.mark.parametrize("size", [1, 3, 6])
def test_logits_match_pytorch(exported, size):
    model_dir, onnx_dir = exported
    torch_model = MultiTaskModel.from_pretrained(model_dir)
    onnx_model = OnnxModel(onnx_dir, num_threads=1)
    batch = batch_of(torch_model, sample_records(size))
    args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with torch.no_grad():
        expected = torch_model(*args)
    got = onnx_model(*args)
    assert set(got) == set(expected) == {"color", "animals", "size", "tags", "tags_plain"}
    for name in expected:
        assert got[name].shape == expected[name].shape, name
        assert float((got[name] - expected[name]).abs().max()) <= 1e-4, name


def test_predictions_match_through_predict_records(exported):
    model_dir, onnx_dir = exported
    expected = predict_records(MultiTaskModel.from_pretrained(model_dir), sample_records())
    got = predict_records(OnnxModel(onnx_dir, num_threads=1), sample_records())
    for want, have in zip(expected, got):
        assert have["color"]["label"] == want["color"]["label"]
        assert have["animals"]["labels"] == want["animals"]["labels"]
        assert have["tags"] == want["tags"]            # CRF Viterbi on the exported transitions
        assert have["tags_plain"] == want["tags_plain"]
        assert have["size"]["prediction"] == pytest.approx(want["size"]["prediction"], abs=1e-4)
        for label, score in want["color"]["scores"].items():
            assert have["color"]["scores"][label] == pytest.approx(score, abs=1e-4)


def test_export_dir_is_self_contained(exported):
    _, onnx_dir = exported
    names = {p.name for p in onnx_dir.iterdir()}
    assert {"model.onnx", "polytask.json", "encoder", "onnx.json", "crf.safetensors",
            "tokenizer.json"} <= names
    assert "model.safetensors" not in names
    info = json.loads((onnx_dir / "onnx.json").read_text())
    assert info["outputs"] == ["color", "animals", "size", "tags", "tags_plain"]
    assert info["inputs"][:2] == ["input_ids", "attention_mask"]
    assert info["hidden_size"] == 32 and info["parameters"] > 0

    import onnx

    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    for tensor in graph.input:  # batch and sequence axes are symbolic, not fixed sizes
        dims = tensor.type.tensor_type.shape.dim
        assert dims[0].dim_param and dims[1].dim_param, tensor.name
    crf = np.asarray(MultiTaskModel.from_pretrained(exported[0]).heads["tags"].crf.transitions.detach())
    assert np.allclose(OnnxModel(onnx_dir).heads["tags"].crf.transitions.detach().numpy(), crf)


def test_missing_onnx_file_names_the_fix(exported):
    model_dir, _ = exported
    with pytest.raises(ModelDirError, match="polytask export"):
        OnnxModel(model_dir)


@pytest.fixture(scope="module", params=[{"name": "mmoe", "experts": 2}, {"name": "ple", "experts": 1}])
def tabular_exported(request, tmp_path_factory):
    """A trained tabular model (MMoE; PLE over one self-attention layer across the fields) and
    its export."""
    from tiny_models import recsys_config, recsys_data

    from polytask.config import parse_config
    from polytask.training.trainer import train

    folder = tmp_path_factory.mktemp("onnx-tabular")
    data = recsys_data(folder / "data")
    layers = 1 if request.param["name"] == "ple" else 0
    train(parse_config(recsys_config(data, folder / "run", request.param, attention_layers=layers)))
    return data, folder / "run" / "model", export_onnx(folder / "run" / "model", folder / "onnx")


def test_tabular_logits_and_predictions_match_pytorch(tabular_exported):
    data, model_dir, onnx_dir = tabular_exported
    torch_model, onnx_model = MultiTaskModel.from_pretrained(model_dir), OnnxModel(onnx_dir, num_threads=1)
    assert json.loads((onnx_dir / "onnx.json").read_text())["encoder_type"] == "polytask_tabular"
    rows = [json.loads(line) for line in (data / "predict.jsonl").read_text().splitlines()]
    rows += [{"user_id": "never-seen"}, {**rows[0], "price": None}]  # unknown value, missing cells
    for size in (1, len(rows)):  # the batch axis is dynamic
        records = torch_model.tokenizer.records_from_rows(rows[:size])
        batch = batch_of(torch_model, records)
        with torch.no_grad():
            expected = torch_model(batch["input_ids"], batch["attention_mask"])
        got = onnx_model(batch["input_ids"], batch["attention_mask"])
        assert set(got) == set(expected) == {"click", "conversion"}
        for name in expected:
            assert got[name].shape == expected[name].shape == (size, 2)
            assert float((got[name] - expected[name]).abs().max()) <= 1e-4, name
    records = onnx_model.tokenizer.records_from_rows(rows)
    want, have = predict_records(torch_model, records), predict_records(onnx_model, records)
    for a, b in zip(want, have):
        for task in ("click", "conversion"):
            assert a[task]["label"] == b[task]["label"]
            assert b[task]["scores"] == pytest.approx(a[task]["scores"], abs=1e-4)


def test_tabular_export_is_served_with_onnx(tabular_exported):
    from fastapi.testclient import TestClient

    from polytask.serving import create_app

    data, model_dir, onnx_dir = tabular_exported
    row = json.loads((data / "predict.jsonl").read_text().splitlines()[0])
    expected = predict_records(MultiTaskModel.from_pretrained(model_dir),
                               OnnxModel(onnx_dir).tokenizer.records_from_rows([row]))[0]
    with TestClient(create_app(onnx_dir, onnx=True)) as client:
        response = client.post("/predict", json={"inputs": [{"features": row}]})
        assert response.status_code == 200, response.text
        got = response.json()["predictions"][0]
        assert got["click"]["label"] == expected["click"]["label"]
        assert got["click"]["scores"] == pytest.approx(expected["click"]["scores"], abs=1e-4)
        assert client.get("/metadata").json()["model"]["runtime"] == "onnxruntime"
        assert client.post("/predict", json={"inputs": ["a text"]}).status_code == 422
