"""Negative-transfer alarms, checked after every evaluation of a training run.

Two alarms, each raised once a condition has held for ``train.alarm_patience`` consecutive
evaluations (the current one included), so a single noisy evaluation does not cry wolf:

- persistent gradient conflict: a ``cosine/<a>|<b>`` value logged by a gradient balancer is
  negative;
- below the single-task baseline: a task's dev primary metric is worse than
  ``train.stl_baselines[task]`` (sign-aware: for a lower-is-better metric, above it).

The history is read back from metrics.jsonl, so the check keeps no state of its own and a
resumed run (whose log is cut back to its checkpoint) raises exactly the same alarms.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from polytask.config import TrainConfig
from polytask.jsonlog import read_log
from polytask.tasks.base import Task

log = logging.getLogger(__name__)


def dev_history(path: Path) -> list[dict[str, Any]]:
    return [ln for ln in read_log(path) if ln.get("split") == "dev"]


def _persistent(history: list[dict[str, Any]], line: dict[str, Any], bad, patience: int) -> bool:
    window = [*history[-(patience - 1):], line] if patience > 1 else [line]
    return len(window) == patience and all(bad(entry) for entry in window)


def check_alarms(line: dict[str, Any], metrics_path: Path, tasks: list[Task],
                 config: TrainConfig) -> list[str]:
    """Alarms for this evaluation's ``line`` (before it is appended to ``metrics_path``);
    each is also logged as a warning."""
    patience = config.alarm_patience
    history = dev_history(metrics_path)
    alarms = []
    for key in sorted(k for k in line if k.startswith("cosine/")):
        if _persistent(history, line, lambda e, k=key: e.get(k) is not None and e[k] < 0, patience):
            alarms.append(f"gradient conflict: {key} < 0 for {patience} evaluations "
                          f"(now {line[key]:.3f}); consider a gradient method or separating these tasks")
    for task in tasks:
        baseline = (config.stl_baselines or {}).get(task.name)
        key = f"{task.name}/{task.primary_metric}"
        if baseline is None or line.get(key) is None:
            continue
        sign = 1 if task.higher_is_better else -1

        def below(entry: dict[str, Any], key=key, baseline=baseline, sign=sign) -> bool:
            return entry.get(key) is not None and sign * (entry[key] - baseline) < 0

        if _persistent(history, line, below, patience):
            alarms.append(f"negative transfer: {key} = {line[key]:.4g} is worse than its single-task "
                          f"baseline {baseline:.4g} for {patience} evaluations")
    for alarm in alarms:
        log.warning("step %s: %s", line.get("step"), alarm)
    return alarms
