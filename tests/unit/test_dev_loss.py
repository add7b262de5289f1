"""Dev loss: computed from the evaluation's own logits (no second pass), logged per task at each
evaluation as ``<task>/loss`` and drawn next to the train loss in report.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from toy import toy_config

from polytask.config import parse_config
from polytask.evaluation.evaluate import evaluate_groups, run_tasks
from polytask.training.setup import prepare
from polytask.training.trainer import train


def test_dev_loss_is_the_task_loss_on_dev(tmp_path: Path, tiny_encoder: Path) -> None:
    config = parse_config(toy_config(tmp_path, tiny_encoder, ["classification", "regression"], num_threads=1))
    prepared = prepare(config)
    dev = prepared.split("dev")
    metrics = evaluate_groups(prepared.model, dev, batch_size=8, with_loss=True)
    tasks, features = dev["toy"]
    color = next(t for t in tasks if t.name == "color")
    probs = run_tasks(prepared.model, features, tasks, batch_size=32)["color"]["scores"]
    gold = [color.index[f.golds["color"]] for f in features]
    expected = -np.mean(np.log(probs[np.arange(len(gold)), gold]))  # cross-entropy over all rows
    assert metrics["color/loss"] == pytest.approx(expected, rel=1e-4)
    assert metrics["size/loss"] > 0
    assert "color/loss" not in evaluate_groups(prepared.model, dev, batch_size=8)  # opt-in


def test_training_logs_dev_loss_per_task(tmp_path: Path, tiny_encoder: Path) -> None:
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=4,
                     eval_every=2, num_threads=1)
    train(parse_config(raw))
    lines = [json.loads(ln) for ln in (Path(raw["train"]["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    dev = [ln for ln in lines if ln["split"] == "dev"]
    assert len(dev) == 2
    assert all(np.isfinite(ln["color/loss"]) and np.isfinite(ln["tags/loss"]) for ln in dev)
