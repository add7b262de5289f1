"""Hyperparameter search: 3 trials write a best config; rerunning continues the same study."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, write_config  # noqa: E402
from toy import toy_config  # noqa: E402

from polytask.config import load_config  # noqa: E402


def test_tune_three_trials_then_resume(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=6,
                     eval_every=2, output_dir=str(tmp_path / "study"))
    raw["tune"] = {"trials": 3, "space": {
        "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "weighting.name": {"type": "categorical", "choices": ["equal", "uncertainty"]}}}
    config = write_config(tmp_path / "tune.yaml", raw)
    result = polytask("tune", config)
    assert result.returncode == 0, result.stderr
    best = load_config(tmp_path / "study" / "best.yaml")
    assert best.tune is None and 1e-4 <= best.train.lr <= 1e-2
    assert best.weighting.name in ("equal", "uncertainty")
    storage = f"sqlite:///{tmp_path / 'study' / 'study.db'}"
    assert len(optuna.load_study(study_name="polytask", storage=storage).trials) == 3

    again = polytask("tune", config, "--trials", "4")
    assert again.returncode == 0, again.stderr
    trials = optuna.load_study(study_name="polytask", storage=storage).trials
    assert len(trials) == 4  # one more trial, the first three were kept
    assert (tmp_path / "study" / "trials" / "trial-3" / "metrics.jsonl").is_file()
    saved = yaml.safe_load((tmp_path / "study" / "best.yaml").read_text())
    assert saved["train"]["lr"] == trials[[t.value for t in trials].index(max(
        t.value for t in trials if t.value is not None))].params["train.lr"]
