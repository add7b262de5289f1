"""Trainer options: early stopping, gradient accumulation, text pairs, bf16, sampler on resume."""

from __future__ import annotations

import json

import pytest
from toy import toy_config

from polytask.config import parse_config
from polytask.errors import ConfigError
from polytask.training.trainer import train


def metric_lines(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_early_stopping_after_patience_evaluations(tmp_path, tiny_encoder):
    # lr is tiny so the dev score cannot improve after the first evaluation.
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], epochs=20, lr=1e-12, eval_every=2,
                     patience=2, head_lr=1e-12)
    results = train(parse_config(raw))
    dev = [m for m in metric_lines(tmp_path / "run") if m["split"] == "dev"]
    assert [m["step"] for m in dev] == [2, 4, 6]
    assert results["best_step"] == 2


def test_gradient_accumulation_counts_optimizer_steps(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], epochs=1, batch_size=8, grad_accum=3)
    train(parse_config(raw))
    dev = [m for m in metric_lines(tmp_path / "run") if m["split"] == "dev"]
    assert dev[-1]["step"] == 4  # 96 examples / (8 x 3) per optimizer step


def test_text_pair_classification_trains(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], epochs=12, lr=3e-3)
    for split in ("train", "dev", "test"):
        path = tmp_path / f"{split}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "text": "i see", "pair": r["text"]}) + "\n" for r in rows))
    raw["datasets"]["toy"].pop("tokens")
    raw["datasets"]["toy"]["text_pair"] = "pair"
    results = train(parse_config(raw))
    assert results["test"]["color/accuracy"] > 0.9  # the label is only visible in the pair


def test_bf16_autocast_on_cpu_trains(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=4,
                     precision="bf16")
    results = train(parse_config(raw))
    assert "tags/f1" in results["test"]


def test_resume_with_other_sampler_is_refused(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=4, checkpoint_every=2)
    train(parse_config(raw))
    raw["sampler"] = "uniform"
    raw["train"]["max_steps"] = 6
    with pytest.raises(ConfigError, match="sampler"):
        train(parse_config(raw), resume=True)
