"""Data parallelism with ``torchrun --nproc_per_node 2`` (gloo on CPU): replicas stay identical,
two ranks of batch_size b train exactly like one process of batch_size 2b (equal weighting,
UPGrad on feature gradients, PCGrad on parameter Jacobians), a resumed run is bit-identical,
and a checkpoint of another process count is refused. One torchrun launch runs every job.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import write_config  # noqa: E402
from ddp_worker import run_job  # noqa: E402
from toy import toy_config  # noqa: E402

from polytask.config import parse_config  # noqa: E402
from polytask.errors import ConfigError  # noqa: E402
from polytask.training.trainer import train  # noqa: E402

WORKER = Path(__file__).parent / "ddp_worker.py"
EXAMPLES = Path(__file__).parents[2] / "examples" / "accelerate"
STEPS = 6
# (name, weighting) of the equivalence jobs.
METHODS = [("equal", {"name": "equal"}),
           ("upgrad", {"name": "upgrad", "gradients_on": "features"}),
           ("pcgrad", {"name": "pcgrad", "gradients_on": "parameters"})]


def torchrun(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def no_dropout(encoder: Path, into: Path) -> Path:
    """The tiny encoder without dropout: one process and two ranks then compute the same function."""
    shutil.copytree(encoder, into)
    config = json.loads((into / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (into / "config.json").write_text(json.dumps(config))
    return into


def job_config(folder: Path, encoder: Path, weighting: dict[str, Any], batch_size: int, **train: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    raw = toy_config(folder, encoder, ["classification", "multilabel"], max_steps=STEPS, eval_every=3,
                     batch_size=batch_size, num_threads=1, **train)
    raw["model"]["head_dropout"] = 0.0
    raw["weighting"] = weighting
    # 89 rows: one batch of each pass has 9 rows, split 5 + 4 over the ranks (unequal shards).
    rows = (folder / "train.jsonl").read_text().splitlines()[:89]
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    return write_config(folder / "config.yaml", raw)


def train_losses(run: Path) -> list[dict[str, float]]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k.startswith("train_loss/")} for line in lines
            if line["split"] == "dev"]


def test_torchrun_two_ranks_equal_one_process_and_resume(tmp_path, tiny_encoder):
    plain = no_dropout(tiny_encoder, tmp_path / "encoder")
    jobs = [{"config": str(job_config(tmp_path / "ddp" / name, plain, weighting, 8)),
             "dump": str(tmp_path / "ddp" / name / "dump")} for name, weighting in METHODS]
    # Resume: dropout on (each rank's RNG must be restored), DWA state, a uniform random sampler.
    (tmp_path / "resume").mkdir()
    raw = toy_config(tmp_path / "resume", tiny_encoder, ["classification", "token_classification"],
                     max_steps=STEPS, eval_every=3, checkpoint_every=2, keep_checkpoints=3, batch_size=8,
                     num_threads=1, output_dir=str(tmp_path / "resume" / "unbroken"))
    raw.update(sampler="uniform", weighting="dwa")
    unbroken = write_config(tmp_path / "resume" / "unbroken.yaml", raw)
    raw["train"]["output_dir"] = str(tmp_path / "resume" / "crashed")
    crashed = write_config(tmp_path / "resume" / "crashed.yaml", raw)
    jobs += [{"config": str(unbroken)},
             {"config": str(crashed), "resume_from": str(tmp_path / "resume" / "unbroken")}]
    # A checkpoint written by one process: resuming it on two is refused (another global batch).
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=2, checkpoint_every=1,
                     num_threads=1, output_dir=str(tmp_path / "one-process"))
    one_process = write_config(tmp_path / "one-process.yaml", raw)
    assert run_job({"config": str(one_process)})["test"]
    jobs.append({"config": str(one_process), "resume": True, "error_to": str(tmp_path / "error.txt")})
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))

    result = torchrun([str(WORKER), str(tmp_path / "jobs.json")])
    assert result.returncode == 0, result.stderr[-4000:]

    for name, weighting in METHODS:
        ddp = tmp_path / "ddp" / name
        rank0, rank1 = (load_file(str(ddp / "dump" / f"rank{r}.safetensors")) for r in (0, 1))
        for key in rank0:  # replicas take identical steps
            assert torch.equal(rank0[key], rank1[key]), (name, key)
        single = tmp_path / "single" / name
        run_job({"config": str(job_config(single, plain, weighting, 16)), "dump": str(single / "dump")})
        reference = load_file(str(single / "dump" / "rank0.safetensors"))
        for key in reference:
            torch.testing.assert_close(rank0[key], reference[key], rtol=1e-4, atol=2e-5,
                                       msg=lambda m: f"{name} {key}: {m}")  # noqa: B023
        expected, actual = train_losses(single / "run"), train_losses(ddp / "run")
        assert len(actual) == 2 and actual[0].keys() == expected[0].keys()
        for got, want in zip(actual, expected):
            assert got == pytest.approx(want, rel=1e-4), name

    steps = lambda run: sorted(p.name for p in (tmp_path / "resume" / run / "checkpoints").iterdir())  # noqa: E731
    assert steps("unbroken") == steps("crashed") == ["step-00000002", "step-00000004", "step-00000006"]
    final = f"checkpoints/step-{STEPS:08d}/model.safetensors"
    expected = load_file(str(tmp_path / "resume" / "unbroken" / final))
    actual = load_file(str(tmp_path / "resume" / "crashed" / final))
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    log = lambda run: (tmp_path / "resume" / run / "metrics.jsonl").read_text()  # noqa: E731
    assert log("unbroken") == log("crashed")
    refused = (tmp_path / "error.txt").read_text()
    assert "written by a run with 1 process(es), this one has 2" in refused


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_accelerate_launch_smoke(tmp_path, tiny_encoder):
    pytest.importorskip("accelerate")
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=3,
                     eval_every=3, batch_size=8, num_threads=1)
    config = write_config(tmp_path / "c.yaml", raw)
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(EXAMPLES / "ddp.yaml"),
               "--main_process_port", str(free_port()), "-m", "polytask", "train", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    (line,) = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
               if '"dev"' in x]
    assert line["epoch"] == 0.5  # 3 steps x 8 rows x 2 processes = half of the 96 examples
    assert result.stderr.count("training examples per input group") == 1  # rank 0 logs
    assert json.loads((tmp_path / "run" / "results.json").read_text())["test"]["color/accuracy"] >= 0


@pytest.mark.parametrize("variable", ["ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"])
def test_accelerate_fsdp_and_deepspeed_are_refused_not_ignored(tmp_path, tiny_encoder, monkeypatch, variable):
    monkeypatch.setenv(variable, "true")
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=1)
    with pytest.raises(ConfigError, match="does not support"):
        train(parse_config(raw))
    assert not (tmp_path / "run").exists()
