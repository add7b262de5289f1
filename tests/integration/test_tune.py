"""Hyperparameter search: 3 trials write a best config; rerunning continues the same study."""

from __future__ import annotations

import pytest
import sys
from pathlib import Path

import optuna
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, write_config  # noqa: E402
from toy import toy_config  # noqa: E402

from polytask.config import load_config  # noqa: E402


@pytest.mark.slow
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


def test_wide_space_categorical_int_log_float_and_a_nested_key(tmp_path, tiny_encoder):
    from polytask.tuning import tune

    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=2,
                     eval_every=2, output_dir=str(tmp_path / "study"))
    raw["weighting"] = "static"  # the name shorthand: weighting.weights.color must still apply
    raw["tune"] = {"trials": 2, "space": {
        "train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "train.batch_size": {"type": "int", "low": 4, "high": 12},
        "model.pooling": {"type": "categorical", "choices": ["cls", "mean"]},
        "weighting.weights.color": {"type": "float", "low": 0.5, "high": 2.0}}}
    result = tune(write_config(tmp_path / "tune.yaml", raw))
    assert result["trials"] == 2
    for trial in optuna.load_study(study_name="polytask",
                                   storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}").trials:
        used = load_config(tmp_path / "study" / "trials" / f"trial-{trial.number}" / "config.yaml")
        assert used.train.lr == trial.params["train.lr"] and 1e-4 <= used.train.lr <= 1e-2
        assert used.train.batch_size == trial.params["train.batch_size"] and 4 <= used.train.batch_size <= 12
        assert used.model.pooling == trial.params["model.pooling"]
        assert used.weighting.name == "static"
        assert used.weighting.weights == {"color": trial.params["weighting.weights.color"]}


def test_median_pruning_stops_a_clearly_bad_trial(tmp_path, tiny_encoder):
    from polytask.tuning import tune

    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=24, eval_every=4,
                     output_dir=str(tmp_path / "study"))
    raw["tune"] = {"trials": 3, "pruning_startup_trials": 2, "space": {
        "train.lr": {"type": "float", "low": 1e-9, "high": 1e-2, "log": True}}}
    (tmp_path / "study").mkdir()
    storage = f"sqlite:///{tmp_path / 'study' / 'study.db'}"  # the study tune continues
    study = optuna.create_study(study_name="polytask", direction="maximize", storage=storage)
    for lr in (5e-3, 5e-3, 1e-9):  # two good trials, then one that cannot learn
        study.enqueue_trial({"train.lr": lr})
    tune(write_config(tmp_path / "tune.yaml", raw))
    trials = optuna.load_study(study_name="polytask", storage=storage).trials
    states = [t.state for t in trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED], states
    bad = trials[2]
    assert bad.params["train.lr"] == 1e-9 and max(bad.intermediate_values) < 24  # stopped early
