"""The training-run part of report.html, as data for the template (report.html.j2):

- a summary: every task's dev and test metrics of the selected model (results.json, else the
  ``final_*`` lines of metrics.jsonl), the selected step, each task's own best dev step, wall
  time and the digest of config.yaml;
- per-task curves (dev metric and losses on their own axes), the learning rate, task weights
  and gradient cosines (only when they vary: ``equal`` weighting draws none);
- per-label results of the selected model: a confusion matrix where a task logs ``confusion``
  (classification) and a precision/recall/F1 table where it logs ``report`` (per class,
  per entity type, per label);
- negative-transfer alarms.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polytask.evaluation import plots
from polytask.evaluation.plots import Chart
from polytask.jsonlog import read_log

TABLE_ROWS = 100  # per-label tables longer than this show their largest-support rows
NOT_TASKS = ("train_loss", "weight", "cosine", "sharing", "amp")


def read_lines(path: Path) -> list[dict[str, Any]]:
    return read_log(path)  # a torn last line (a crash mid-write) is dropped with a warning


def task_info(run_dir: Path, lines: list[dict[str, Any]]) -> dict[str, tuple[str, bool]]:
    """Task -> (primary metric, higher is better), from the run's config, else from the log."""
    import polytask.tasks  # noqa: F401 - registers task types
    from polytask.config import TaskConfig
    from polytask.tasks.base import TASK_TYPES

    config = run_dir / "config.yaml"
    tasks = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("tasks", []) if config.is_file() else []
    types = [TASK_TYPES.get(name) for name in TASK_TYPES.names()]
    out = {t["name"]: (TASK_TYPES.get(t["type"]).primary_metric_for(TaskConfig.model_validate(t)),
                       TASK_TYPES.get(t["type"]).higher_is_better)
           for t in tasks if t.get("type") in TASK_TYPES.names()}
    direction = {kind.primary_metric: kind.higher_is_better for kind in types}  # e.g. mse: lower
    for line in lines if not out else []:
        for key in line:
            task, _, metric = key.partition("/")
            if metric and metric != "exact_match" and task not in out and task not in NOT_TASKS:
                out[task] = (metric, direction.get(metric, True))
    return out


def series(lines: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(ln["step"], ln[key]) for ln in lines if isinstance(ln.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def varies(lines: list[dict[str, Any]], keys: list[str]) -> bool:
    values = [v for key in keys for v in series(lines, key)[1]]
    return bool(values) and max(values) - min(values) > 1e-9


def final_metrics(run_dir: Path, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """results.json as the trainer wrote it, else what metrics.jsonl holds of it."""
    path = run_dir / "results.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    finals = {ln["split"].removeprefix("final_"): ln for ln in lines if str(ln.get("split")).startswith("final_")}
    return {split: {k: v for k, v in ln.items() if "/" in k} for split, ln in finals.items()}


def config_digest(run_dir: Path) -> str | None:
    config = run_dir / "config.yaml"
    return hashlib.sha256(config.read_bytes()).hexdigest()[:12] if config.is_file() else None


def best_dev(lines: list[dict[str, Any]], key: str, higher: bool) -> tuple[float, int] | None:
    steps, values = series(lines, key)
    if not values:
        return None
    i = int(np.argmax(values) if higher else np.argmin(values))
    return values[i], steps[i]


def summary(run_dir: Path, dev: list[dict[str, Any]], results: dict[str, Any],
            info: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    splits = [s for s in ("dev", "test") if isinstance(results.get(s), dict)]
    keys = {k for s in splits for k, v in results[s].items() if isinstance(v, (int, float))}
    rows = []
    for key in keys:
        task, metric = key.split("/", 1)
        primary = task in info and info[task][0] == metric
        rows.append({"task": task, "metric": metric, "primary": primary,
                     "cells": [results[s].get(key) for s in splits],
                     "best": best_dev(dev, key, info[task][1]) if primary else None})
    order = {task: i for i, task in enumerate(info)}  # config order; primary metric first
    rows.sort(key=lambda r: (order.get(r["task"], len(order)), r["task"], not r["primary"], r["metric"]))
    wall = results.get("wall_time_s")
    return {"splits": splits, "rows": rows, "best_step": results.get("best_step"), "per_eval": bool(dev),
            "wall_time": None if wall is None else duration(float(wall)), "digest": config_digest(run_dir)}


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f} s"


def training_charts(dev: list[dict[str, Any]], info: dict[str, tuple[str, bool]]) -> list[Chart]:
    charts = []
    for task, (metric, _) in info.items():
        metric_series = {f"dev {metric}": series(dev, f"{task}/{metric}")}
        losses = {"train loss": series(dev, f"train_loss/{task}"), "dev loss": series(dev, f"{task}/loss")}
        metric_series = {k: v for k, v in metric_series.items() if v[0]}
        losses = {k: v for k, v in losses.items() if v[0]}
        if metric_series or losses:
            charts.append(Chart(f"curves-{task}", f"{task}: dev {metric} (left) and losses (right) per evaluation",
                                plots.curves(metric_series, losses, task, metric)))
    if series(dev, "lr")[0]:
        charts.append(Chart("lr", "learning rate at each evaluation",
                            plots.lines({"lr": series(dev, "lr")}, "learning rate", "lr")))
    return charts + balance_charts(dev)


def balance_charts(dev: list[dict[str, Any]]) -> list[Chart]:
    """Task weights and the mean gradient cosine per task pair, when they carry information."""
    charts = []
    weights = sorted({k for ln in dev for k in ln if k.startswith("weight/")})
    if varies(dev, weights):
        charts.append(Chart("weights", "task weights over time", plots.lines(
            {k.removeprefix("weight/"): series(dev, k) for k in weights}, "task weights", "weight")))
    pairs = sorted({k for ln in dev for k in ln if k.startswith("cosine/")})
    if varies(dev, pairs):
        names = sorted({t for k in pairs for t in k.removeprefix("cosine/").split("|")})
        matrix = np.eye(len(names))
        for key in pairs:
            a, b = key.removeprefix("cosine/").split("|")
            mean = float(np.mean(series(dev, key)[1]))
            matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = mean
        charts.append(Chart("conflict", "gradient conflict: mean cosine of task gradients per pair",
                            plots.heatmap(matrix, names, "mean gradient cosine (conflict < 0)")))
    return charts


def label_details(results: dict[str, Any], tasks: list[str]) -> list[dict[str, Any]]:
    """Per-label results of the selected model on test (else dev), for the tasks that log them."""
    split = "test" if isinstance(results.get("test"), dict) else "dev"
    metrics = results.get(split) or {}
    details = []
    for task in tasks:
        confusion, report = metrics.get(f"{task}/confusion"), metrics.get(f"{task}/report")
        chart = None
        if isinstance(confusion, dict) and confusion.get("labels"):
            chart = Chart(f"confusion-{task}", f"{task}: confusion matrix on {split} (rows: gold)",
                          plots.confusion(confusion["matrix"], confusion["labels"], f"{task} ({split})"))
        rows = sorted(([label, row] for label, row in (report or {}).items()
                       if isinstance(row, dict) and not label.endswith(" avg")),
                      key=lambda r: -float(r[1].get("support", 0)))
        if chart or rows:
            details.append({"task": task, "split": split, "chart": chart, "rows": rows[:TABLE_ROWS],
                            "hidden": max(0, len(rows) - TABLE_ROWS)})
    return details


def run_section(run_dir: Path) -> dict[str, Any] | None:
    """Everything the template shows about the training run in ``run_dir``; None if none ran."""
    lines = read_lines(run_dir / "metrics.jsonl")
    dev = [ln for ln in lines if ln.get("split") == "dev"]
    results = final_metrics(run_dir, lines)
    if not dev and not any(isinstance(results.get(s), dict) for s in ("dev", "test")):
        return None
    info = task_info(run_dir, dev or [results.get("test") or {}])
    return {"summary": summary(run_dir, dev, results, info), "charts": training_charts(dev, info),
            "details": label_details(results, list(info)),
            "alarms": [(ln["step"], a) for ln in dev for a in ln.get("alarms", [])]}
