"""Relatedness on synthetic tasks with known structure (tiny random BERT, toy data)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from toy import COLORS, sentence, write_jsonl

from polytask.analysis import relatedness, suggest_groups
from polytask.analysis.relatedness import model_signals
from polytask.config import parse_config
from polytask.training.setup import prepare


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = sentence(rng)
        row["same_rule"] = row["color"].upper()       # the color rule, other label names
        row["random_rule"] = rng.choice(COLORS)        # unrelated to the input
        rows.append(row)
    return rows


def _config(tmp_path: Path, encoder: Path) -> dict:
    train = write_jsonl(tmp_path / "train.jsonl", _rows(64, 0))
    other = write_jsonl(tmp_path / "other.jsonl", [
        {"text": f"quarterly revenue grew {i} percent in europe", "topic": "finance" if i % 2 else "markets"}
        for i in range(40)])
    return {
        "model": {"encoder": str(encoder), "max_length": 32, "head_dropout": 0.0},
        "datasets": {"toy": {"train": str(train), "tokens": "tokens"}, "news": {"train": str(other)}},
        "tasks": [{"name": "color", "type": "classification", "dataset": "toy", "label": "color"},
                  {"name": "same", "type": "classification", "dataset": "toy", "label": "same_rule"},
                  {"name": "random", "type": "classification", "dataset": "toy", "label": "random_rule"},
                  {"name": "topic", "type": "classification", "dataset": "news", "label": "topic"}],
        "train": {"output_dir": str(tmp_path / "run"), "batch_size": 16, "lr": 1e-3, "progress": False,
                  "warmup_ratio": 0.0},
    }


def test_statistical_signals_follow_the_known_structure(tmp_path: Path, tiny_encoder: Path) -> None:
    result = relatedness(parse_config(_config(tmp_path, tiny_encoder)), steps=0, out=tmp_path / "out")
    names = result["tasks"]
    matrix = {k: np.array(v["matrix"], dtype=float) for k, v in result["signals"].items()}
    color, same, rnd, topic = (names.index(n) for n in ("color", "same", "random", "topic"))
    assert matrix["label_nmi"][color, same] == pytest.approx(1.0)
    assert matrix["label_nmi"][color, same] > matrix["label_nmi"][color, rnd] + 0.5
    assert np.isnan(matrix["label_nmi"][color, topic])  # no shared inputs
    assert matrix["vocab_jaccard"][color, same] == 1.0 > matrix["vocab_jaccard"][color, topic]
    assert matrix["vocab_jsd"][color, same] == 0.0 < matrix["vocab_jsd"][color, topic]
    assert matrix["input_overlap"][color, same] == 1.0 and matrix["input_overlap"][color, topic] == 0.0
    for key in result["signals"]:
        assert (tmp_path / "out" / f"{key}.csv").is_file() and (tmp_path / "out" / f"{key}.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "relatedness.json").read_text())["groups"] is None


def test_identical_tasks_have_gradient_cosine_one(tmp_path: Path, tiny_encoder: Path) -> None:
    config = parse_config(_config(tmp_path, tiny_encoder))
    prepared = prepare(config, ("train",))
    # "identical" includes the head: same labels, same initial head weights
    prepared.model.heads["same"].load_state_dict(prepared.model.heads["color"].state_dict())
    signals = model_signals(config, steps=3, prepared=prepared)
    names = [t.name for t in config.tasks]
    color, same, rnd, topic = (names.index(n) for n in ("color", "same", "random", "topic"))
    for key in ("gradient_cosine", "parameter_cosine"):
        assert signals[key][color, same] == pytest.approx(1.0, abs=1e-4)
        assert signals[key][color, same] > signals[key][color, rnd]
    assert np.isnan(signals["gradient_cosine"][color, topic])     # different inputs
    assert np.isfinite(signals["parameter_cosine"][color, topic])  # shared parameters: defined
    affinity = signals["tag_affinity"]
    assert affinity[color, same] == pytest.approx(affinity[color, color], rel=1e-3)
    assert affinity[color, same] > affinity[color, rnd]


def test_grouping_keeps_negative_affinity_apart() -> None:
    matrix = np.array([[1.0, 0.8, -0.1], [0.6, 1.0, 0.3], [-0.2, 0.2, 1.0]])
    assert suggest_groups(["a", "b", "c"], matrix) == [["a", "b"], ["c"]]
    assert suggest_groups(["a", "b"], np.array([[1.0, -0.5], [-0.5, 1.0]])) == [["a"], ["b"]]
