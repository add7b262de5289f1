"""The loop's own state (step, data positions, early stopping...) and its checkpoints: save it,
and resume from the newest complete one, on one process or all ranks of a distributed run."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polytask.atomic import append_line, write_text
from polytask.distributed import Distributed
from polytask.errors import CheckpointError, ConfigError
from polytask.jsonlog import read_log
from polytask.training import checkpoint
from polytask.training.resume_config import check_shapes

log = logging.getLogger(__name__)
#: One line per resume: when, from which checkpoint and step, and the allowed config changes.
RESUMES_FILE = "resumes.jsonl"


class RankRNG:
    """Checkpoint entry with every rank's RNG state (rank 0 writes the checkpoint; a resumed rank
    restores its own stream, so dropout repeats exactly). ``capture`` is collective."""

    def __init__(self, ddp: Distributed) -> None:
        self.ddp, self.states, self.loaded = ddp, [], None

    def capture(self) -> None:
        self.states = self.ddp.gather_objects(checkpoint.capture_rng())

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": self.states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ranks = state.get("ranks", [])
        self.loaded = ranks[self.ddp.rank] if len(ranks) == self.ddp.world_size else None

    def restore(self) -> None:
        """After the checkpoint restored rank 0's RNG: this rank's own, if it was saved."""
        if self.loaded is not None:
            self.loaded["torch"] = self.loaded["torch"].cpu()
            checkpoint.restore_rng(self.loaded)


@dataclass
class LoopState:
    step: int = 0
    best_score: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    streams: dict[str, dict[str, int]] = field(default_factory=dict)
    sampler: dict[str, Any] = field(default_factory=dict)
    balancer: dict[str, Any] = field(default_factory=dict)
    # Train losses since the last evaluation; checkpointed so a resumed log is identical.
    running: dict[str, list[float]] = field(default_factory=dict)
    world_size: int = 1  # processes of the run: a resume must use as many (same global batch)


def resume_from(out: Path, ddp: Distributed, model: nn.Module, device: torch.device,
                streams: dict[str, Any], objects: dict[str, Any], sampler,
                changes: dict[str, tuple[Any, Any]] | None = None) -> LoopState | None:
    """The loop state of the newest complete checkpoint under ``out``, with ``model``, every
    stream, ``objects`` and ``sampler`` restored to it (None: no checkpoint, start at step 0);
    ``changes`` (allowed config changes, see resume_config.py) are recorded in ``resumes.jsonl``."""
    # Rank 0 picks the checkpoint and every rank loads that one.
    found = ddp.broadcast_object(checkpoint.latest_complete(out / "checkpoints"))
    if found is None:
        log.warning("--resume: no complete checkpoint in %s; starting from step 0", out / "checkpoints")
        return None
    check_world_size(found, ddp.world_size)
    check_shapes(found, model)
    state = LoopState(**checkpoint.load_checkpoint(found, model, objects, device))
    if "rank_rng" in objects:
        objects["rank_rng"].restore()
    for group, stream_state in state.streams.items():
        streams[group].load_state_dict(stream_state)
    try:
        if state.sampler:  # checkpoints from before samplers were saved have none
            sampler.load_state_dict(state.sampler)
    except ValueError as exc:
        raise ConfigError(f"--resume: {exc}; resume with the sampler the run started with") from None
    objects["balancer"].load_extra_state_dict(state.balancer)
    if ddp.is_main:
        keep_metrics_until(out / "metrics.jsonl", state.step)
        record_resume(out, state.step, found, changes or {})
    log.info("resumed from %s (step %d)", found, state.step)
    return state


def record_resume(out: Path, step: int, found: Path, changes: dict[str, tuple[Any, Any]]) -> None:
    note = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "step": step,
            "checkpoint": found.name, "changed": {k: {"old": old, "new": new} for k, (old, new) in changes.items()}}
    append_line(out / RESUMES_FILE, json.dumps(note))


def check_world_size(found: Path, world_size: int) -> None:
    """A resume must run as many processes as the run had: train.batch_size is per process, so
    another count would change the global batch, the step plan and the data order."""
    try:
        saved = json.loads((found / "trainer_state.json").read_text(encoding="utf-8")).get("world_size", 1)
    except (OSError, ValueError, AttributeError):
        return  # load_checkpoint reports a damaged checkpoint
    if saved != world_size:
        raise ConfigError(f"--resume: {found} was written by a run with {saved} process(es), this one "
                          f"has {world_size}; relaunch with {saved} (torchrun --nproc_per_node / "
                          "accelerate --num_processes), or start a new output_dir")


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint, so a resumed log equals an unbroken one."""
    if path.is_file():  # a torn last line (crash mid-append) is dropped with a warning
        kept = [entry for entry in read_log(path) if entry.get("step", 0) <= step]
        write_text(path, "".join(json.dumps(entry) + "\n" for entry in kept))


def save_state(out: Path, ddp: Distributed, model: nn.Module, state: LoopState,
               streams: dict[str, Any], objects: dict[str, Any], sampler, keep: int) -> None:
    """Checkpoint ``state`` (with the streams', sampler's and balancer's positions) under
    ``out/checkpoints``, keeping the newest ``keep``; rank 0 writes, every rank takes part."""
    balancer = objects["balancer"]
    state.streams = {g: s.state_dict() for g, s in streams.items()}
    state.sampler = sampler.state_dict()
    state.balancer = balancer.extra_state_dict()
    state.world_size = ddp.world_size
    ddp.check_replicas({"model": model, "balancer": balancer}, state.balancer)
    if "rank_rng" in objects:
        objects["rank_rng"].capture()  # collective: every rank hands rank 0 its RNG state
    if not ddp.is_main:
        return
    try:
        checkpoint.save_checkpoint(out / "checkpoints", state.step, model, objects, asdict(state), keep)
    except OSError as exc:
        raise CheckpointError(
            f"step {state.step}: the checkpoint could not be written ({exc.strerror}); earlier "
            f"checkpoints in {out / 'checkpoints'} are intact, free space and --resume") from None
