"""``polytask bench``: single-task baselines and several MTL methods, several seeds, Δm.

Every run uses the config's encoder, data and train settings (budget included); only the
following change:

- STL baseline of task t: the config with t alone (its dataset only), hard sharing, equal
  weighting; one per task and seed.
- MTL method m: the config with ``weighting: m`` (short names ``ew`` -> equal, ``uw`` ->
  uncertainty; any other registered name as is; the config's own options are kept when m is
  the config's method).
- seed s: ``train.seed = config seed + s``.

Each run reports the metrics of its best dev checkpoint (the trainer reloads it) on test, or
on dev where the data has no test split. A finished run's result is written to
``<out>/results/<run>.json`` as it ends and skipped on a rerun; an interrupted run resumes from
its newest complete checkpoint. Δm uses each task's primary metric (``evaluation/delta_m.py``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polytask.atomic import write_text
from polytask.config import RunConfig, parse_config
from polytask.errors import ConfigError
from polytask.evaluation.delta_m import delta_m_over_seeds
from polytask.evaluation.evaluate import scalar_metrics
from polytask.training import checkpoint

log = logging.getLogger(__name__)
ALIASES = {"ew": "equal", "uw": "uncertainty"}


@dataclass
class BenchRun:
    name: str
    kind: str  # "stl" or "mtl"
    method: str
    seed: int
    config: RunConfig


def _derive(config: RunConfig, out: Path, name: str, seed: int, **sections: Any) -> RunConfig:
    raw = config.model_dump(mode="json", exclude_unset=True)
    raw.update(sections)
    train = {k: v for k, v in raw.get("train", {}).items() if k != "stl_baselines"}
    raw["train"] = {**train, "seed": seed, "output_dir": str(out / "runs" / name)}
    return parse_config(raw)


def plan_runs(config: RunConfig, methods: list[str], seeds: int, out: Path) -> list[BenchRun]:
    import polytask.weighting  # noqa: F401 - registers balancers
    from polytask.weighting.base import BALANCERS

    runs = []
    raw = config.model_dump(mode="json", exclude_unset=True)
    for offset in range(seeds):
        seed = config.train.seed + offset
        for task in config.tasks:
            name = f"stl-{task.name}-seed{seed}"
            model = {**raw.get("model", {}), "sharing": {"name": "hard"}}
            train = {**raw.get("train", {}), "select_on": "mean"}
            cfg = _derive(config, out, name, seed, tasks=[t for t in raw["tasks"] if t["name"] == task.name],
                          datasets={task.dataset: raw["datasets"][task.dataset]}, model=model,
                          weighting={"name": "equal"}, train=train)
            runs.append(BenchRun(name, "stl", "stl", seed, cfg))
        for short in methods:
            method = ALIASES.get(short, short)
            BALANCERS.get(method)  # an unknown name fails before any training
            weighting = raw.get("weighting", {}) if config.weighting.name == method else {"name": method}
            name = f"{short}-seed{seed}"
            runs.append(BenchRun(name, "mtl", short, seed, _derive(config, out, name, seed, weighting=weighting)))
    return runs


def execute(run: BenchRun, out: Path) -> dict[str, Any]:
    """Train one run unless its result file exists; returns the result."""
    from polytask.training.trainer import train

    result_path = out / "results" / f"{run.name}.json"
    if result_path.is_file():
        log.info("bench: %s already done, skipped", run.name)
        return json.loads(result_path.read_text(encoding="utf-8"))
    run_dir = Path(run.config.train.output_dir)
    resume = checkpoint.latest_complete(run_dir / "checkpoints") is not None
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # a run that died before its first checkpoint starts over
    log.info("bench: training %s", run.name)
    results = train(run.config, resume=resume)
    split = "test" if results.get("test") else "dev"
    result = {"name": run.name, "kind": run.kind, "method": run.method, "seed": run.seed,
              "split": split, "metrics": scalar_metrics(results.get(split, {}))}
    write_text(result_path, json.dumps(result, indent=2))
    return result


def task_info(config: RunConfig) -> list[dict[str, Any]]:
    import polytask.tasks  # noqa: F401 - registers task types
    from polytask.tasks.base import TASK_TYPES

    return [{"name": t.name, "metric": TASK_TYPES.get(t.type).primary_metric_for(t),
             "higher_is_better": TASK_TYPES.get(t.type).higher_is_better} for t in config.tasks]


def _stats(runs: list[dict[str, float]], keys: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    values = {k: [r[k] for r in runs if k in r] for k in keys}
    mean = {k: float(np.mean(v)) for k, v in values.items() if v}
    std = {k: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in values.items() if v}
    return mean, std


def summarise(config: RunConfig, results: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    tasks = task_info(config)
    keys = [f"{t['name']}/{t['metric']}" for t in tasks]
    higher = {f"{t['name']}/{t['metric']}": t["higher_is_better"] for t in tasks}
    seeds = sorted({r["seed"] for r in results})
    stl_runs = [{k: v for r in results if r["kind"] == "stl" and r["seed"] == s for k, v in r["metrics"].items()}
                for s in seeds]
    mean, std = _stats(stl_runs, keys)
    summary: dict[str, Any] = {"tasks": tasks, "seeds": seeds, "split": results[0]["split"],
                               "stl": {"metrics_mean": mean, "metrics_std": std}, "methods": {}}
    for method in methods:
        runs = [r["metrics"] for r in sorted(results, key=lambda r: r["seed"]) if r["method"] == method]
        dm_mean, dm_std, per_seed = delta_m_over_seeds(runs, stl_runs, higher)
        mean, std = _stats(runs, keys)
        summary["methods"][method] = {"delta_m_mean": dm_mean, "delta_m_std": dm_std,
                                      "delta_m_per_seed": per_seed, "metrics_mean": mean, "metrics_std": std}
    return summary


def markdown(summary: dict[str, Any]) -> str:
    keys = [f"{t['name']}/{t['metric']}" for t in summary["tasks"]]
    lines = [f"Split: {summary['split']}; seeds: {', '.join(map(str, summary['seeds']))}; "
             "Δm over each task's primary metric vs the single-task baseline (%).", "",
             "| method | Δm % | " + " | ".join(keys) + " |", "|---" * (len(keys) + 2) + "|"]
    for name, entry in {"stl": summary["stl"], **summary["methods"]}.items():
        dm = "—" if name == "stl" else f"{entry['delta_m_mean']:+.2f} ± {entry['delta_m_std']:.2f}"
        cells = " | ".join(f"{entry['metrics_mean'][k]:.4f} ± {entry['metrics_std'][k]:.4f}"
                           if k in entry["metrics_mean"] else "—" for k in keys)
        lines.append(f"| {name} | {dm} | {cells} |")
    return "\n".join(lines) + "\n"


def results_csv(results: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    keys = sorted({k for r in results for k in r["metrics"]})
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["run", "kind", "method", "seed", "split", "delta_m", *keys])
    for r in sorted(results, key=lambda r: (r["kind"] != "stl", r["method"], r["seed"], r["name"])):
        entry = summary["methods"].get(r["method"])
        dm = "" if entry is None else round(entry["delta_m_per_seed"][summary["seeds"].index(r["seed"])], 6)
        writer.writerow([r["name"], r["kind"], r["method"], r["seed"], r["split"], dm,
                         *(r["metrics"].get(k, "") for k in keys)])
    return buffer.getvalue()


def bench(config: RunConfig, methods: list[str], seeds: int = 3, out: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) the benchmark; writes results.md, results.csv, bench.json, report.html."""
    from polytask.evaluation.report import build_report

    if seeds < 1 or not methods:
        raise ConfigError("bench needs --seeds >= 1 and at least one method in --methods")
    out = Path(out or Path(config.train.output_dir) / "bench").resolve()
    runs = plan_runs(config, methods, seeds, out)
    results = [execute(run, out) for run in runs]
    summary = summarise(config, results, methods)
    write_text(out / "bench.json", json.dumps(summary, indent=2))
    write_text(out / "results.md", markdown(summary))
    write_text(out / "results.csv", results_csv(results, summary))
    build_report(out)
    return summary
