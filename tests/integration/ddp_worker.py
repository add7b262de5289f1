"""Runs training jobs in a ``torchrun`` worker (or in-process as the single-process reference).

Usage: ``torchrun --nproc_per_node 2 ddp_worker.py jobs.json``. Each job trains one config with
``polytask.training.trainer.train`` and, at the last evaluation, saves THIS rank's weights
to ``<dump>/rank<r>.safetensors`` (before the best model is reloaded), so a test can compare the
replicas with each other and with a single-process run. A job with ``"resume_from"`` first
copies that finished run minus its newest checkpoint (a crash after the previous one), then
resumes it; ``"resume": true`` resumes in place, and ``"error_to"`` records a ConfigError there.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from polytask.config import load_config
from polytask.errors import ConfigError
from polytask.training.checkpoint import checkpoints
from polytask.training.setup import prepare
from polytask.training.trainer import train


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def simulate_crash(finished: Path, into: Path) -> None:
    """``into`` = ``finished`` as it was on disk right after its second-newest checkpoint."""
    shutil.copytree(finished, into)
    shutil.rmtree(checkpoints(into / "checkpoints")[-1])


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    config = load_config(job["config"])
    out = Path(config.train.output_dir)
    if job.get("resume_from"):
        if rank() == 0:
            simulate_crash(Path(job["resume_from"]), out)
        if dist.is_initialized():
            dist.barrier()
    prepared = prepare(config)
    last = config.train.max_steps

    def dump(step: int, score: float | None, line: dict[str, Any]) -> None:
        if step == last and job.get("dump"):
            folder = Path(job["dump"])
            folder.mkdir(parents=True, exist_ok=True)
            weights = {k: v.detach().cpu().contiguous() for k, v in prepared.model.state_dict().items()}
            save_file(weights, str(folder / f"rank{rank()}.safetensors"))

    try:
        return train(config, resume=bool(job.get("resume") or job.get("resume_from")), prepared=prepared,
                     on_evaluation=dump)
    except ConfigError as exc:
        if not job.get("error_to"):
            raise
        Path(job["error_to"]).write_text(str(exc), encoding="utf-8")
        return {}


def main(jobs_file: str) -> None:
    torch.set_num_threads(1)
    # A process group opened by the caller: train() must join it and leave it open.
    dist.init_process_group("gloo")
    for job in json.loads(Path(jobs_file).read_text(encoding="utf-8")):
        run_job(job)
    assert dist.is_initialized(), "train() closed a process group it did not open"
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
