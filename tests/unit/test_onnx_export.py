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
