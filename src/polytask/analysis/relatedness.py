"""``polytask relatedness``: every relatedness signal as a task x task matrix, a grouping
suggestion, and the files to look at (relatedness.json, one CSV and one heatmap per signal)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polytask.analysis.advice import advise, reliability
from polytask.analysis.gradients import draw_probe, mean_signals, measure, spread_signals
from polytask.analysis.grouping import suggest_groups
from polytask.analysis.statistics import statistical_signals, task_examples
from polytask.analysis.transfer import transfer_matrix
from polytask.atomic import write_text
from polytask.config import RunConfig
from polytask.data.batches import GroupStream
from polytask.data.validation import validate
from polytask.errors import ConfigError
from polytask.sampling.samplers import build_sampler
from polytask.training.optim import build_optimizer, build_scheduler
from polytask.device import pick_device
from polytask.training.setup import Prepared, prepare
from polytask.weighting.base import build_balancer

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    "vocab_jaccard": "Jaccard index of the training vocabularies (1 = same word types)",
    "vocab_jsd": "Jensen-Shannon divergence of word distributions (0 = identical; lower = closer)",
    "input_overlap": "share of identical training inputs, over the smaller task",
    "label_nmi": "normalised mutual information of the labels on shared inputs",
    "gradient_cosine": "mean cosine of task gradients w.r.t. the shared features at the "
                       "balancers' feature point (same inputs)",
    "parameter_cosine": "mean cosine of task gradients w.r.t. the shared parameters",
    "tag_affinity": "TAG affinity: relative drop of column task's loss after a look-ahead step "
                    "on row task's loss (> 0 = row helps column)",
    "step_share": "mean cos(g_column, g_column + g_row) on the shared parameters: the share of the "
                  "column task's progress a joint step keeps (< 0.5: row task's gradient dominates)",
    "transfer": "measured transfer: relative change of column task's dev primary metric when "
                "trained with row task for a few steps (> 0 = row helps column)",
}


def model_signals(config: RunConfig, steps: int, prepared: Prepared | None = None,
                  lookahead_lr: float | None = None, details: bool = False):
    """Run ``steps`` steps of the real trainer components, measuring before each step; with
    ``details`` also each signal's 95 % interval half-width over the window."""
    from polytask.training.trainer import Run, plan_steps, train_step

    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    prepared = prepared or prepare(config, ("train",))
    device = pick_device(config.train.device)
    model = prepared.model.to(device)
    features = {g: f for g, f in prepared.features["train"].items() if f}
    seed, size = config.train.seed, config.train.batch_size
    streams = {g: GroupStream(g, f, size, seed, config.train.group_by_length) for g, f in features.items()}
    probes = {g: GroupStream(g, f, size, seed + 1, config.train.group_by_length) for g, f in features.items()}
    total, per_epoch = plan_steps(config, {g: len(f) for g, f in features.items()})
    run = Run(prepared, Path(config.train.output_dir), device, streams, total, per_epoch)
    sampler = build_sampler(config.sampler, {g: len(f) for g, f in features.items()}, seed, total)
    balancer = build_balancer(config.weighting, [t.name for t in prepared.tasks]).to(device)
    optimizer = build_optimizer(model, balancer, config.train)
    scheduler = build_scheduler(optimizer, config.train, total)
    samples = []
    for _ in range(steps):
        model.eval()  # no dropout while measuring: the look-ahead differences are small
        samples.append(measure(prepared, draw_probe(prepared, probes, device), lookahead_lr or config.train.lr))
        train_step(run, sampler, balancer, optimizer, scheduler)
        run.state.step += 1
    if not details:
        return mean_signals(samples)
    return mean_signals(samples), spread_signals(samples)


def relatedness(config: RunConfig, steps: int = 25, out: str | Path | None = None,
                prepared: Prepared | None = None, lookahead_lr: float | None = None,
                pairwise_steps: int = 0, seeds: int = 3) -> dict[str, Any]:
    """Relatedness of every pair of tasks of ``config``; writes files into ``out`` if given.

    ``steps=0`` skips the model-based signals. ``pairwise_steps=N`` also measures the transfer
    matrix (``analysis/transfer.py``: short alone and pair runs over ``seeds`` seeds, resumable
    in ``<out>/transfer``); the grouping and the advice then come from it.
    """
    if pairwise_steps < 0 or (pairwise_steps > 0 and seeds < 1):
        raise ConfigError(f"--pairwise-steps {pairwise_steps} --seeds {seeds}: the transfer matrix needs "
                          "--pairwise-steps >= 1 (0: not measured) and --seeds >= 1")
    names = [t.name for t in config.tasks]
    records = validate(config, ("train",) if pairwise_steps <= 0 else ("train", "dev"))
    signals = statistical_signals(task_examples(config, records))
    spread: dict[str, np.ndarray] = {}
    if steps > 0:
        means, spread = model_signals(config, steps, prepared, lookahead_lr, details=True)
        signals.update(means)
    transfer = None
    if pairwise_steps > 0:
        folder = Path(out if out is not None else Path(config.train.output_dir) / "relatedness") / "transfer"
        transfer = transfer_matrix(config, pairwise_steps, seeds, folder)
        signals["transfer"] = transfer["mean"]
    basis = "transfer" if transfer else "tag_affinity" if "tag_affinity" in signals else None
    result: dict[str, Any] = {
        "tasks": names, "steps": steps,
        "signals": {key: {"description": DESCRIPTIONS[key], "matrix": _jsonable(m)} for key, m in signals.items()},
        "groups": suggest_groups(names, signals[basis]) if basis else None,
        "grouping_signal": basis,
        "advice": advise(names, signals, spread, transfer),
        "reliability": reliability(names, signals) if transfer else None,
    }
    if transfer:
        result["transfer"] = {k: _jsonable(v) if isinstance(v, np.ndarray) else v for k, v in transfer.items()}
    if out is not None:
        write_outputs(Path(out), result)
    return result


def _jsonable(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if not np.isfinite(v) else float(f"{v:.6g}") for v in row] for row in matrix]  # affinities ~1e-6


def write_outputs(out: Path, result: dict[str, Any]) -> None:
    from polytask.evaluation.plots import heatmap

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "relatedness.json", json.dumps(result, indent=2))
    names = result["tasks"]
    for key, signal in result["signals"].items():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["task", *names])
        for name, row in zip(names, signal["matrix"]):
            writer.writerow([name, *("" if v is None else v for v in row)])
        write_text(out / f"{key}.csv", buffer.getvalue())
        matrix = np.array([[np.nan if v is None else v for v in row] for row in signal["matrix"]])
        diverging = key in ("gradient_cosine", "parameter_cosine", "tag_affinity", "step_share", "transfer")
        (out / f"{key}.png").write_bytes(heatmap(matrix, names, signal["description"], diverging))
    log.info("relatedness written to %s (groups: %s)", out, result["groups"])
    for line in result["advice"]:
        if line["verdict"] == "hurts":
            log.warning("%s -> %s: predicted to hurt (%s)", line["source"], line["target"], line["confidence"])
