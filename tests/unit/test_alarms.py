"""Negative-transfer alarms: persistent gradient conflict and below-STL-baseline scores."""

from __future__ import annotations

import json
from pathlib import Path

from polytask.config import TaskConfig, TrainConfig
from polytask.evaluation.alarms import check_alarms
from polytask.tasks.base import build_task

import polytask.tasks  # noqa: F401,I001 - registers task types


def _tasks():
    return [build_task(TaskConfig(name="a", type="classification", dataset="d", label="a")),
            build_task(TaskConfig(name="r", type="regression", dataset="d", label="r"))]


def _run(tmp_path: Path, lines: list[dict], **train) -> list[list[str]]:
    path, config, out = tmp_path / "metrics.jsonl", TrainConfig(alarm_patience=2, **train), []
    for line in lines:
        alarms = check_alarms({"split": "dev", **line}, path, _tasks(), config)
        out.append(alarms)
        with path.open("a") as handle:
            handle.write(json.dumps({"split": "dev", **line}) + "\n")
    return out


def test_conflict_alarm_needs_consecutive_negative_cosines(tmp_path: Path) -> None:
    cos = "cosine/a|r"
    alarms = _run(tmp_path, [{"step": 1, cos: -0.2}, {"step": 2, cos: 0.1}, {"step": 3, cos: -0.1},
                             {"step": 4, cos: -0.3}])
    assert [bool(a) for a in alarms] == [False, False, False, True]
    assert "cosine/a|r" in alarms[-1][0]


def test_stl_baseline_alarm_is_sign_aware(tmp_path: Path) -> None:
    lines = [{"step": 1, "a/accuracy": 0.5, "r/mse": 2.0}, {"step": 2, "a/accuracy": 0.6, "r/mse": 2.0}]
    alarms = _run(tmp_path, lines, stl_baselines={"a": 0.7, "r": 1.0})
    assert len(alarms[1]) == 2  # accuracy below 0.7, and MSE above 1.0 (lower is better)
    (tmp_path / "ok").mkdir()
    assert _run(tmp_path / "ok", lines, stl_baselines={"a": 0.4, "r": 3.0}) == [[], []]


def test_no_baselines_no_cosines_no_alarm(tmp_path: Path) -> None:
    assert _run(tmp_path, [{"step": 1, "a/accuracy": 0.1}] * 3) == [[], [], []]
