"""A loaded MultiTaskModel predicts by itself (as ``polytask predict`` does), polytask.predict
takes a loaded model or a path, and from_pretrained says clearly when a device is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from toy import toy_config
from typer.testing import CliRunner

import polytask
from polytask.cli import app
from polytask.errors import ConfigError
from polytask.models.multitask import MultiTaskModel

TEXTS = ["i see a red cat", "a blue dog near the house", "the green bird", "a very big red dog"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_encoder) -> Path:
    folder = tmp_path_factory.mktemp("loaded")
    polytask.train(toy_config(folder, tiny_encoder, ["classification", "token_classification"],
                              max_steps=2, eval_every=2))
    return folder / "run" / "model"


def test_model_predict_equals_the_cli(model_dir, tmp_path):
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    done = CliRunner().invoke(app, ["predict", str(model_dir), "-i", str(inputs), "--device", "cpu"])
    assert done.exit_code == 0, done.output
    cli = [json.loads(line)["predictions"] for line in done.stdout.splitlines()]
    model = MultiTaskModel.from_pretrained(model_dir)
    assert model.predict(TEXTS) == cli
    assert model.predict(TEXTS, tasks=["color"], batch_size=1) == [{"color": p["color"]} for p in cli]
    assert polytask.predict(model, TEXTS) == cli == polytask.predict(model_dir, TEXTS)
    assert model.predict(TEXTS[0]) == cli[:1]  # one text alone is one input


def test_from_pretrained_on_a_missing_device_says_so(model_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="device 'cuda' is not available on this machine"):
        MultiTaskModel.from_pretrained(model_dir, device="cuda")


def test_from_pretrained_dtype(model_dir):
    model = MultiTaskModel.from_pretrained(model_dir, dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    with pytest.raises(ConfigError, match="dtype 'int8'"):
        MultiTaskModel.from_pretrained(model_dir, dtype="int8")


def test_cli_predict_on_a_missing_device_is_exit_2_without_traceback(model_dir, tmp_path, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from polytask.cli import main

    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "a red cat"}\n', encoding="utf-8")
    monkeypatch.setattr("sys.argv", ["polytask", "predict", str(model_dir), "-i", str(inputs), "--device", "cuda"])
    with pytest.raises(SystemExit) as exited:
        main()
    err = " ".join(capsys.readouterr().err.split())
    assert exited.value.code == 2 and "device 'cuda' is not available" in err and "Traceback" not in err
