"""Corrupt (not torn) checkpoints and model dirs: sha256 in the manifest finds them, resume
falls back to the newest checkpoint that verifies, old manifests still load."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sys
from pathlib import Path

import pytest
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import run_in_process  # noqa: E402

from polytask.config import parse_config  # noqa: E402
from polytask.errors import CheckpointError, ModelDirError  # noqa: E402
from polytask.models.multitask import MultiTaskModel  # noqa: E402
from polytask.training.checkpoint import latest_complete  # noqa: E402
from polytask.training.trainer import train  # noqa: E402


@pytest.fixture
def run(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=4, checkpoint_every=2,
                     eval_every=2, keep_checkpoints=3)
    train(parse_config(raw))
    return raw, tmp_path / "run"


def flip_byte(path: Path, offset_from_end: int = 16) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def same_size_garbage(path: Path, seed: int = 0) -> None:
    path.write_bytes(random.Random(seed).randbytes(path.stat().st_size))


@pytest.mark.parametrize("damage", [
    ("model.safetensors", flip_byte), ("state.pt", flip_byte), ("state.pt", same_size_garbage),
    ("model.safetensors", same_size_garbage), ("trainer_state.json", same_size_garbage),
])
def test_corrupt_checkpoint_falls_back_to_the_newest_that_verifies(run, damage, caplog):
    raw, out = run
    name, spoil = damage
    bad = out / "checkpoints" / "step-00000004" / name
    spoil(bad)
    caplog.set_level(logging.INFO)
    assert latest_complete(out / "checkpoints") == out / "checkpoints" / "step-00000002"
    assert str(bad) in caplog.text and "sha256" in caplog.text
    raw["train"]["max_steps"] = 4
    train(parse_config(raw), resume=True)
    assert "step-00000002" in caplog.text and "resumed from" in caplog.text


def strip_hashes(checkpoint: Path) -> None:
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    (checkpoint / "manifest.json").write_text(json.dumps({"step": manifest["step"],
                                                          "files": manifest["files"]}))


def test_old_manifest_without_hashes_still_resumes(run, caplog):
    raw, out = run
    for step in (2, 4):
        strip_hashes(out / "checkpoints" / f"step-0000000{step}")
    # Resume from step 2 (a longer max_steps is a changed config, refused on resume): the run
    # must load the hash-less step 2 and write step 4 again, now with hashes.
    shutil.rmtree(out / "checkpoints" / "step-00000004")
    caplog.set_level(logging.INFO)
    train(parse_config(raw), resume=True)
    assert "step-00000002" in caplog.text
    assert "sha256" in (out / "checkpoints" / "step-00000004" / "manifest.json").read_text()


@pytest.mark.parametrize("name,seed", [("state.pt", s) for s in range(4)] + [("model.safetensors", 0)])
def test_garbage_under_an_old_manifest_is_a_clear_error_not_a_traceback(run, name, seed):
    raw, out = run
    newest = out / "checkpoints" / "step-00000004"
    strip_hashes(newest)  # sizes only: the garbage passes, loading must report it
    same_size_garbage(newest / name, seed)
    with pytest.raises(CheckpointError, match=rf"{newest / name}.*corrupt|{newest / name}.*unreadable") as raised:
        train(parse_config(raw), resume=True)
    assert "could run code" not in str(raised.value)


def test_flipped_byte_in_a_saved_model_is_reported_at_load(run, tmp_path, monkeypatch, capsys):
    _, out = run
    flip_byte(out / "model" / "model.safetensors")
    with pytest.raises(ModelDirError, match="model.safetensors.*sha256"):
        MultiTaskModel.from_pretrained(out / "model")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "red cat"}\n')
    code, err = run_in_process(monkeypatch, capsys, "predict", out / "model", "--input", inputs)
    assert code == 2 and "model.safetensors" in err and "damaged" in err


def test_flipped_byte_in_an_onnx_export_is_reported_at_load(run, tmp_path):
    from polytask.serving.onnx_export import export_onnx
    from polytask.serving.onnx_model import OnnxModel

    _, out = run
    export_onnx(out / "model", tmp_path / "onnx")
    OnnxModel(tmp_path / "onnx")
    flip_byte(tmp_path / "onnx" / "model.onnx", offset_from_end=64)
    with pytest.raises(ModelDirError, match="model.onnx.*sha256"):
        OnnxModel(tmp_path / "onnx")


@pytest.mark.parametrize("spoil", [same_size_garbage, Path.unlink])
def test_damaged_manifest_falls_back_and_the_step_is_written_again(run, spoil, caplog):
    raw, out = run
    newest = out / "checkpoints" / "step-00000004"
    spoil(newest / "manifest.json")
    caplog.set_level(logging.INFO)
    train(parse_config(raw), resume=True)  # resumes at step 2 and writes step 4 again
    assert "step-00000002" in caplog.text and latest_complete(out / "checkpoints") == newest
