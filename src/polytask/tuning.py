"""Hyperparameter search with Optuna: TPE sampling, median pruning, a resumable SQLite study.

The search space lives in the run config under ``tune:``; each key is a dotted config path,
so anything a config can say can be searched (``train.lr``, ``weighting.name``, ``sampler.name``,
``weighting.weights.intent``...). Every trial is an ordinary training run in
``<output_dir>/trials/trial-<n>``; the study is stored in ``<output_dir>/study.db``, so rerunning
``polytask tune`` continues it; the best trial's config is written to ``best.yaml``.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import yaml

from polytask.atomic import write_text
from polytask.config import RunConfig, TuneConfig, apply_overrides, dump_config, load_config, parse_config
from polytask.errors import ConfigError
from polytask.extras import require

log = logging.getLogger(__name__)


def _optuna():
    return require("hpo", "optuna", feature="polytask tune")


def suggest(trial, space: dict[str, Any]) -> list[str]:
    """``key=value`` overrides for one trial, drawn from the search space."""
    overrides = []
    for key, dim in space.items():
        if dim.type == "categorical":
            value = trial.suggest_categorical(key, dim.choices)
        elif dim.type == "int":
            value = trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.log)
        else:
            value = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
        overrides.append(override(key, value))
    return overrides


def override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: the value parses back exactly


def make_objective(raw: dict[str, Any], source: str, base_dir: Path, out: Path, tune: TuneConfig):
    optuna = _optuna()
    from polytask.training.trainer import train

    def objective(trial) -> float:
        trial_raw = apply_overrides(copy.deepcopy(raw), suggest(trial, tune.space))
        trial_raw.pop("tune", None)
        trial_raw.setdefault("train", {})["output_dir"] = str(out / "trials" / f"trial-{trial.number}")
        config = parse_config(trial_raw, source, base_dir)

        def report(step: int, score: float | None, metrics: dict[str, Any]) -> None:
            if score is None:
                return
            trial.report(score, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step} (score {score:.4f})")

        results = train(config, resume=True, on_evaluation=report)
        if results.get("best_score") is None:
            raise ConfigError("tune needs a dev split: the trial has no selection score to optimise")
        return float(results["best_score"])

    return objective


def tune(config_path: str | Path, trials: int | None = None, overrides: list[str] | None = None) -> dict:
    """Run (or continue) the study; returns the best value, params and the best config path."""
    from polytask.distributed import launched

    if launched():  # each rank would run its own trials against one study file
        raise ConfigError("polytask tune runs in one process (each trial is an ordinary run); "
                          "start it with python/polytask, not torchrun or accelerate launch")
    optuna = _optuna()
    config_path = Path(config_path)
    config: RunConfig = load_config(config_path, overrides)
    if config.tune is None:
        raise ConfigError(f"{config_path}: add a tune: section with a space: to search")
    raw = apply_overrides(yaml.safe_load(config_path.read_text(encoding="utf-8")), overrides or [])
    out = Path(config.train.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=config.tune.study_name, storage=f"sqlite:///{out / 'study.db'}", load_if_exists=True,
        direction=config.tune.direction, sampler=optuna.samplers.TPESampler(seed=config.train.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=config.tune.pruning_startup_trials))
    wanted = trials or config.tune.trials
    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, wanted - len(finished))
    log.info("study %s: %d trial(s) done, running %d more", config.tune.study_name, len(finished), remaining)
    objective = make_objective(raw, str(config_path), config_path.parent.resolve(), out, config.tune)
    study.optimize(objective, n_trials=remaining, catch=())
    best_overrides = [override(k, v) for k, v in study.best_params.items()]
    best_raw = apply_overrides(copy.deepcopy(raw), best_overrides)
    best_raw.pop("tune", None)
    best = parse_config(best_raw, str(config_path), config_path.parent.resolve())
    write_text(out / "best.yaml", dump_config(best))
    return {"best_value": study.best_value, "best_params": study.best_params,
            "best_config": str(out / "best.yaml"), "trials": len(study.trials)}
