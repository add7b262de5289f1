"""Each task type trains through the real loop on a learnable toy set, and its loss falls."""

from __future__ import annotations

import json

import pytest
from toy import toy_config

from polytask.config import parse_config
from polytask.training.trainer import train


def losses(run_dir, task):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [line[f"train_loss/{task}"] for line in lines if f"train_loss/{task}" in line]


@pytest.mark.parametrize("task_type,name", [("classification", "color"), ("multilabel", "animals"),
                                            ("regression", "size"), ("token_classification", "tags")])
def test_each_task_type_learns(tmp_path, tiny_encoder, task_type, name):
    config = parse_config(toy_config(tmp_path, tiny_encoder, [task_type], epochs=12, lr=3e-3,
                                     eval_every=6))
    results = train(config)
    history = losses(tmp_path / "run", name)
    assert len(history) >= 10
    assert history[-1] < 0.8 * history[0], history
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert results["test"], "test split evaluated"


def test_crf_token_task_learns_and_decodes_per_word(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["token_classification"], epochs=12, lr=3e-3, eval_every=6)
    raw["tasks"][0]["crf"] = True
    results = train(parse_config(raw))
    history = losses(tmp_path / "run", "tags")
    assert history[-1] < 0.8 * history[0]
    assert results["test"]["tags/f1"] > 0.9


def test_shared_inputs_train_together_and_report_exact_match(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], epochs=12,
                     lr=3e-3, eval_every=6)
    results = train(parse_config(raw))
    assert results["test"]["color/accuracy"] > 0.9
    assert results["test"]["tags/f1"] > 0.9
    assert results["test"]["toy/exact_match"] > 0.8
