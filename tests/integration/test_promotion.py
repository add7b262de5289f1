"""Continued training (--init-from) and the promotion gate that protects the old model."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, write_config  # noqa: E402

import polytask as pt
from polytask.config import parse_config
from polytask.errors import ConfigError
from polytask.tasks.base import build_task
from polytask.training.promotion import compare

TYPES = ["classification", "regression"]


@pytest.fixture(scope="module")
def init_model(tmp_path_factory, tiny_encoder) -> Path:
    """A model that learned the toy tasks well, so a damaged one scores clearly lower."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("init")
    pt.train(parse_config(toy_config(folder, tiny_encoder, TYPES, epochs=8, lr=3e-3)))
    return folder / "run" / "model"


def continued(folder: Path, encoder: Path, **train) -> dict:
    raw = toy_config(folder, encoder, TYPES, **train)
    raw["train"]["output_dir"] = str(folder / "next")
    return raw


def same_weights(a: Path, b: Path) -> bool:
    left, right = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def test_unchanged_model_is_promoted(tmp_path, tiny_encoder, init_model):
    config = parse_config(continued(tmp_path, tiny_encoder, max_steps=1))
    config.train.lr = 0.0  # one step that cannot move the weights (the config itself needs lr > 0)
    results = pt.train(config, init_from=init_model)
    decision = json.loads((tmp_path / "next" / "promotion.json").read_text())
    assert decision["promoted"] is True and results["promotion"] == decision
    for name, metric in (("color", "accuracy"), ("size", "mse")):
        verdict = decision["tasks"][name]
        assert verdict["metric"] == metric and verdict["ok"] and verdict["drop"] == 0
        assert verdict["init"] == verdict["new"] is not None
    assert same_weights(tmp_path / "next" / "model", init_model)


def shuffled_labels(folder: Path) -> None:
    """Break the link between text and labels in the training file."""
    path = folder / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rng = random.Random(3)
    colors, sizes = [r["color"] for r in rows], [r["size"] * 3 + 2 for r in rows]
    rng.shuffle(colors)
    rng.shuffle(sizes)
    path.write_text("".join(json.dumps({**r, "color": c, "size": s}) + "\n"
                            for r, c, s in zip(rows, colors, sizes)))


def test_worse_model_is_not_promoted_and_old_weights_stay(tmp_path, tiny_encoder, init_model):
    raw = continued(tmp_path, tiny_encoder, max_steps=12, eval_every=6, lr=0.05)
    shuffled_labels(tmp_path)
    result = polytask("train", write_config(tmp_path / "c.yaml", raw), "--init-from", init_model)
    assert result.returncode == 0, result.stderr
    assert "not promoted" in result.stdout
    decision = json.loads((tmp_path / "next" / "promotion.json").read_text())
    assert decision["promoted"] is False
    failed = [name for name, v in decision["tasks"].items() if not v["ok"]]
    assert failed and all("dropped by" in decision["tasks"][n]["reason"] for n in failed)
    assert same_weights(tmp_path / "next" / "model", init_model)
    assert (tmp_path / "next" / "model" / "polytask.json").is_file()


def test_new_label_is_a_clear_error(tmp_path, tiny_encoder, init_model):
    raw = continued(tmp_path, tiny_encoder, max_steps=1)
    path = tmp_path / "train.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["color"] = "purple"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError, match=r"task 'color' has label\(s\) \['purple'\]"):
        pt.train(parse_config(raw), init_from=init_model)
    assert not (tmp_path / "next" / "model").exists()


def test_other_task_names_and_own_output_dir_are_refused(tmp_path, tiny_encoder, init_model):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=1)
    with pytest.raises(ConfigError, match="same task names"):
        pt.train(parse_config(raw), init_from=init_model)
    raw = continued(tmp_path, tiny_encoder, max_steps=1)
    raw["train"]["output_dir"] = str(init_model.parent)
    result = polytask("train", write_config(tmp_path / "c.yaml", raw), "--init-from", init_model)
    assert result.returncode == 2 and "train.output_dir" in result.stderr


def test_gate_is_sign_aware_and_uses_tolerance(tmp_path, tiny_encoder):
    config = parse_config(toy_config(tmp_path, tiny_encoder, TYPES))
    tasks = [build_task(t) for t in config.tasks]
    old = {"color/accuracy": 0.90, "size/mse": 1.00}
    better = compare(old, {"color/accuracy": 0.95, "size/mse": 0.50}, tasks, 0.0)
    assert all(v["ok"] for v in better.values()) and better["size"]["drop"] == pytest.approx(-0.5)
    worse = compare(old, {"color/accuracy": 0.88, "size/mse": 1.20}, tasks, 0.05)
    assert worse["color"]["ok"] and not worse["size"]["ok"]
    assert "dropped by 0.2" in worse["size"]["reason"]
