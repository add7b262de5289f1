"""The transfer matrix: measured transfer between tasks from short real runs.

For every task i and seed s, i is trained alone for ``steps`` steps; for every unordered pair
{i, j}, i and j are trained together for the same steps (the config's sharing, sampler and
weighting: ``training/trainer.py`` itself). Every run of one seed starts from the same weights:
the model of the whole config is built once per seed and each run loads from it the weights it
has (the encoder, its tasks' heads: matched by name and shape). Row j, column i is the transfer
j -> i: the relative change of i's dev primary metric when trained with j,

    sign * (with_j - alone) / |alone|     (sign -1 for a lower-is-better metric)

averaged over seeds, with a 95 % Student-t interval ``mean ± t·sd/sqrt(K)`` (none for one seed).
A pair run measures both directions. Each finished run is written to
``<out>/runs/<name>.json`` as it ends and skipped on a rerun; its training directory is removed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from polytask.atomic import write_text
from polytask.config import RunConfig, parse_config
from polytask.errors import ConfigError

log = logging.getLogger(__name__)


def sub_config(config: RunConfig, tasks: list[str], seed: int, steps: int, out: Path) -> RunConfig:
    """``config`` restricted to ``tasks`` (and their datasets), trained ``steps`` steps."""
    raw = config.model_dump(mode="json", exclude_unset=True)
    raw["tasks"] = [t for t in raw["tasks"] if t["name"] in tasks]
    datasets = {t["dataset"] for t in raw["tasks"]}
    raw["datasets"] = {k: v for k, v in raw["datasets"].items() if k in datasets}
    raw.pop("tune", None)
    train = {k: v for k, v in raw.get("train", {}).items() if k not in ("stl_baselines", "patience")}
    raw["train"] = {**train, "seed": seed, "max_steps": steps, "eval_every": steps, "checkpoint_every": steps,
                    "output_dir": str(out), "progress": False, "report_to": []}
    try:
        return parse_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"the transfer run of tasks {tasks} cannot be configured: {exc}; options "
                          "that name other tasks (sharing, sampler, weighting) must allow a subset") from None


def reference_state(config: RunConfig, seed: int) -> dict[str, Any]:
    """The initial weights of the whole config's model with ``seed``: every run's start."""
    from polytask.training.setup import prepare

    seeded = config.model_copy(update={"train": config.train.model_copy(update={"seed": seed})})
    return {k: v.detach().clone() for k, v in prepare(seeded, ("train",)).model.state_dict().items()}


def load_start(model, reference: dict[str, Any]) -> None:
    own = model.state_dict()
    same = {k: v for k, v in reference.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(same, strict=False)
    if missing := sorted(set(own) - set(same)):
        log.debug("transfer: %d tensors keep their own initialisation: %s", len(missing), missing[:5])


def primary_scores(config: RunConfig, metrics: dict[str, Any]) -> dict[str, float]:
    """Each task's dev primary metric, signed so that higher is better."""
    from polytask.benchmarking import task_info

    out = {}
    for task in task_info(config):
        value = metrics.get(f"{task['name']}/{task['metric']}")
        if value is None:
            raise ConfigError(f"task {task['name']!r}: no dev score; the transfer matrix needs a dev "
                              f"split for every task (datasets.<name>.dev)")
        out[task["name"]] = float(value) if task["higher_is_better"] else -float(value)
    return out


def execute(config: RunConfig, tasks: list[str], seed: int, steps: int, out: Path,
            reference: dict[str, Any]) -> dict[str, Any]:
    """Train ``tasks`` together ``steps`` steps from ``reference``; the result, saved."""
    from polytask.training.setup import prepare, seed_everything
    from polytask.training.trainer import train

    name = ("alone-" if len(tasks) == 1 else "pair-") + "+".join(tasks) + f"-seed{seed}"
    result_path, run_dir = out / "runs" / f"{name}.json", out / "runs" / name
    if result_path.is_file():
        log.info("transfer: %s already done, skipped", name)
        return json.loads(result_path.read_text(encoding="utf-8"))
    if run_dir.exists():
        shutil.rmtree(run_dir)  # our own half-finished run: start it over
    cfg = sub_config(config, tasks, seed, steps, run_dir)
    start = time.perf_counter()
    prepared = prepare(cfg)
    load_start(prepared.model, reference)
    seed_everything(seed)  # the same dropout and data order in every run of this seed
    results = train(cfg, prepared=prepared)
    result = {"name": name, "tasks": tasks, "seed": seed, "steps": steps,
              "scores": primary_scores(cfg, results.get("dev", {})),
              "seconds": round(time.perf_counter() - start, 3)}
    write_text(result_path, json.dumps(result, indent=2))
    shutil.rmtree(run_dir, ignore_errors=True)
    log.info("transfer: %s done in %.1fs: %s", name, result["seconds"], result["scores"])
    return result


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): a 95 % Student-t interval over seeds; (mean, -inf, inf) for one."""
    data = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(data) == 0:
        return np.nan, np.nan, np.nan
    mean = float(data.mean())
    if len(data) < 2:
        return mean, -np.inf, np.inf
    half = float(stats.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data)))
    return mean, mean - half, mean + half


def relative(with_other: float, alone: float) -> float:
    return (with_other - alone) / abs(alone) if abs(alone) > 1e-12 else np.nan


def transfer_matrix(config: RunConfig, steps: int, seeds: int, out: Path) -> dict[str, Any]:
    """Run (or resume) every alone and pair run; the matrix with its interval and cost."""
    if steps < 1 or seeds < 1:
        raise ConfigError("--pairwise-steps and --seeds must be >= 1")
    names = [t.name for t in config.tasks]
    runs = []
    for offset in range(seeds):
        seed = config.train.seed + offset
        reference: dict[str, Any] | None = None
        for i, a in enumerate(names):
            for b in [None, *names[i + 1:]]:
                tasks = [a] if b is None else [a, b]
                if reference is None and not _done(out, tasks, seed):
                    reference = reference_state(config, seed)
                runs.append(execute(config, tasks, seed, steps, out, reference or {}))
    return summarise(names, runs, steps, seeds)


def _done(out: Path, tasks: list[str], seed: int) -> bool:
    name = ("alone-" if len(tasks) == 1 else "pair-") + "+".join(tasks) + f"-seed{seed}"
    return (out / "runs" / f"{name}.json").is_file()


def summarise(names: list[str], runs: list[dict[str, Any]], steps: int, seeds: int) -> dict[str, Any]:
    n = len(names)
    mean, low, high = (np.full((n, n), np.nan) for _ in range(3))
    per_seed: dict[str, list[float]] = {}
    for i, target in enumerate(names):
        for j, source in enumerate(names):
            if i == j:
                continue
            values = []
            for alone in (r for r in runs if r["tasks"] == [target]):
                pair = next(r for r in runs if set(r["tasks"]) == {target, source} and r["seed"] == alone["seed"])
                values.append(relative(pair["scores"][target], alone["scores"][target]))
            mean[j, i], low[j, i], high[j, i] = interval(values)
            per_seed[f"{source}->{target}"] = [round(v, 6) for v in values]
    seconds = [r["seconds"] for r in runs]
    return {"steps": steps, "seeds": seeds, "mean": mean, "low": low, "high": high, "per_seed": per_seed,
            "cost": {"runs": len(runs), "seconds_per_run": round(float(np.mean(seconds)), 3),
                     "seconds_total": round(float(np.sum(seconds)), 3)}}
