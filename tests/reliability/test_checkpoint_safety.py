"""Torn and hostile checkpoints, fuzzed model dirs, full disks, determinism."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import polytask, write_config  # noqa: E402

from polytask import atomic  # noqa: E402
from polytask.config import parse_config  # noqa: E402
from polytask.errors import CheckpointError, ModelDirError  # noqa: E402
from polytask.manifest import sha256_file  # noqa: E402
from polytask.models.multitask import MultiTaskModel  # noqa: E402
from polytask.training.checkpoint import checkpoints, latest_complete  # noqa: E402
from polytask.training.trainer import train  # noqa: E402


def short_run(tmp_path, tiny_encoder, **train_options):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=6,
                     checkpoint_every=2, keep_checkpoints=3, eval_every=2, **train_options)
    return raw, train(parse_config(raw))


def step_dir(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:08d}"


@pytest.mark.parametrize("damage", ["truncated weights", "missing state", "half renamed"])
def test_torn_checkpoint_is_skipped_for_the_newest_complete(tmp_path, tiny_encoder, damage, caplog):
    caplog.set_level(logging.INFO)
    raw, _ = short_run(tmp_path, tiny_encoder)
    run = tmp_path / "run"
    newest = step_dir(run, 6)
    if damage == "truncated weights":
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "missing state":
        (newest / "state.pt").unlink()
    else:  # a crash between the two renames of a replace leaves only the temp name
        os.replace(newest, run / "checkpoints" / ".step-00000006.abc.tmp")
    assert latest_complete(run / "checkpoints") == step_dir(run, 4)
    raw["train"]["max_steps"] = 6
    train(parse_config(raw), resume=True)
    assert "resumed from" in caplog.text and "step-00000004" in caplog.text
    assert step_dir(run, 6).is_dir()


def test_resume_twice_in_a_row_is_identical(tmp_path, tiny_encoder):
    raw, _ = short_run(tmp_path, tiny_encoder)
    final = load_file(str(step_dir(tmp_path / "run", 6) / "model.safetensors"))
    for _ in range(2):
        shutil.rmtree(step_dir(tmp_path / "run", 6))
        train(parse_config(raw), resume=True)
        again = load_file(str(step_dir(tmp_path / "run", 6) / "model.safetensors"))
        assert all(torch.equal(final[k], again[k]) for k in final)


class Hostile:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/polytask-pwned",))


def test_pickled_code_in_checkpoint_is_refused(tmp_path, tiny_encoder):
    raw, _ = short_run(tmp_path, tiny_encoder)
    newest = step_dir(tmp_path / "run", 6)
    state = torch.load(newest / "state.pt", weights_only=True)
    state["rng"]["evil"] = Hostile()
    torch.save(state, newest / "state.pt")
    manifest = json.loads((newest / "manifest.json").read_text())
    manifest["files"]["state.pt"] = (newest / "state.pt").stat().st_size
    manifest["sha256"]["state.pt"] = sha256_file(newest / "state.pt")  # a crafted, not corrupt, file
    (newest / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="refused"):
        train(parse_config(raw), resume=True)
    assert not Path("/tmp/polytask-pwned").exists()


@pytest.mark.parametrize("target,content", [
    ("polytask.json", b"\x00\xff garbage"), ("polytask.json", b'{"format_version": 1, "tasks": 3}'),
    ("model.safetensors", os.urandom(256)), ("encoder/config.json", b"[1, 2"),
])
def test_fuzzed_model_dir_gives_clear_error_and_exit_2(tmp_path, tiny_encoder, target, content):
    short_run(tmp_path, tiny_encoder)
    model_dir = tmp_path / "run" / "model"
    (model_dir / target).write_bytes(content)
    with pytest.raises(ModelDirError):
        MultiTaskModel.from_pretrained(model_dir)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "red cat"}\n')
    result = polytask("predict", model_dir, "--input", inputs)
    assert result.returncode == 2 and str(model_dir) in result.stderr.replace("\n", "")


def test_model_dir_with_wrong_label_map_is_refused(tmp_path, tiny_encoder):
    short_run(tmp_path, tiny_encoder)
    meta_path = tmp_path / "run" / "model" / "polytask.json"
    meta = json.loads(meta_path.read_text())
    meta["tasks"][0]["state"]["labels"].append("purple")  # head has 3 outputs, map says 4
    meta_path.write_text(json.dumps(meta))
    (meta_path.parent / "manifest.json").unlink()  # as a model saved before manifests: no hashes
    with pytest.raises(ModelDirError, match="do not fit"):
        MultiTaskModel.from_pretrained(tmp_path / "run" / "model")


def test_disk_full_during_checkpoint_keeps_earlier_ones(tmp_path, tiny_encoder, monkeypatch):
    raw, _ = short_run(tmp_path, tiny_encoder)
    shutil.rmtree(step_dir(tmp_path / "run", 6))  # the resume must write step 6 again
    before = sorted(p.name for p in checkpoints(tmp_path / "run" / "checkpoints"))

    def full(_root):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "fsync_tree", full)
    with pytest.raises(CheckpointError, match="No space left"):
        train(parse_config(raw), resume=True)
    after = sorted(p.name for p in checkpoints(tmp_path / "run" / "checkpoints"))
    assert after == before and latest_complete(tmp_path / "run" / "checkpoints") is not None
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.endswith(".tmp")]


def test_unwritable_output_dir_is_exit_2(tmp_path, tiny_encoder):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=2,
                     output_dir=str(blocker / "run"))
    result = polytask("train", write_config(tmp_path / "c.yaml", raw))
    assert result.returncode == 2 and "output_dir" in result.stderr


def test_same_seed_same_metrics(tmp_path, tiny_encoder):
    logs = []
    for name in ("a", "b"):
        raw = toy_config(tmp_path / name if (tmp_path / name).mkdir() is None else None, tiny_encoder,
                         ["classification", "token_classification"], max_steps=8, eval_every=4)
        train(parse_config(raw))
        logs.append((tmp_path / name / "run" / "metrics.jsonl").read_text())
    assert logs[0] == logs[1]
