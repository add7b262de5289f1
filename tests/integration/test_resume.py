"""Crash safety: a run killed with SIGKILL and resumed ends bit-identical to an unbroken run;
a diverging loss stops before the optimizer step with the step and task named."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, start, write_config  # noqa: E402
from toy import toy_config  # noqa: E402

from polytask.training.checkpoint import checkpoints, is_complete  # noqa: E402

STEPS = 240


def config(tmp_path: Path, encoder: Path, name: str) -> Path:
    raw = toy_config(tmp_path, encoder, ["classification", "token_classification", "regression"],
                     max_steps=STEPS, eval_every=40, checkpoint_every=10, num_threads=1, lr=1e-3,
                     output_dir=str(tmp_path / name), keep_checkpoints=3)
    raw["sampler"] = "uniform"  # the sampler draws at random: resume must reproduce the draws
    return write_config(tmp_path / f"{name}.yaml", raw)


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step-{STEPS:08d}" / "model.safetensors"))


@pytest.mark.parametrize("kill_after", [10, 70])
@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, tiny_encoder, kill_after):
    reference = polytask("train", config(tmp_path, tiny_encoder, "unbroken"))
    assert reference.returncode == 0, reference.stderr

    crashed = config(tmp_path, tiny_encoder, "crashed")
    process = start("train", crashed)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        done = [p for p in checkpoints(tmp_path / "crashed" / "checkpoints") if is_complete(p)]
        if done and int(done[-1].name.split("-")[1]) >= kill_after:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(60)
    assert process.returncode == -signal.SIGKILL, "the run must be killed mid-way for this test"
    assert not (tmp_path / "crashed" / "checkpoints" / f"step-{STEPS:08d}").exists()

    resumed = polytask("train", crashed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    expected, actual = final_weights(tmp_path / "unbroken"), final_weights(tmp_path / "crashed")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    log = lambda run: (tmp_path / run / "metrics.jsonl").read_text()  # noqa: E731
    assert log("unbroken") == log("crashed")


def test_nan_loss_stops_before_step_naming_step_and_task(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=50,
                     checkpoint_every=2, eval_every=2)
    rows = (tmp_path / "train.jsonl").read_text().splitlines()
    # A target that overflows float32: the regression loss becomes inf on its batch.
    rows = [json.dumps({**json.loads(r), "size": 1e39}) if i >= 48 else r for i, r in enumerate(rows)]
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    result = polytask("train", write_config(tmp_path / "c.yaml", raw))
    assert result.returncode == 2
    flat = result.stderr.replace("\n", " ")
    assert "step" in flat and "'size'" in flat and "before the" in flat
    saved = [p for p in checkpoints(tmp_path / "run" / "checkpoints") if is_complete(p)]
    for path in saved:  # every checkpoint left behind is whole and finite
        assert all(torch.isfinite(t).all() for t in load_file(str(path / "model.safetensors")).values())
