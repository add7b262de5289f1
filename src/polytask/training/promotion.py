"""Continued training from a saved model, and the gate that decides whether the result
replaces it (``polytask train CONFIG --init-from MODEL_DIR``).

The run starts from every weight of MODEL_DIR (encoder, heads) and its task states (label
order, regression target statistics), so the config must have the same task names and types;
the new training data may use a subset of each task's labels, never a label the model lacks.
The model section of the config is not used: the architecture is the saved one.

At the end the new best model and the init model are scored with the same evaluation on the
same dev features. The new model is promoted (kept in ``<output_dir>/model``) only if no
task's primary dev metric dropped by more than ``train.promotion_tolerance``; otherwise
``<output_dir>/model`` becomes a copy of MODEL_DIR. ``promotion.json`` records the decision.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from polytask.atomic import atomic_dir, write_text
from polytask.config import RunConfig
from polytask.errors import ConfigError
from polytask.evaluation.evaluate import evaluate_groups
from polytask.models.multitask import MultiTaskModel
from polytask.tasks.base import Task

log = logging.getLogger(__name__)

PROMOTION_FILE = "promotion.json"
#: Task options that shape the head or its targets; they must not change between runs.
FIXED_OPTIONS = ("type", "crf", "normalize_target")


def check_init_run(config: RunConfig, init_from: str | Path) -> None:
    """Refuse runs the gate could not judge or that would overwrite the model they start from."""
    if not any(d.dev is not None for d in config.datasets.values()):
        raise ConfigError("--init-from: the promotion gate compares models on the dev split, and "
                          "no dataset has dev: set datasets.<name>.dev")
    init, model_out = Path(init_from).resolve(), (Path(config.train.output_dir) / "model").resolve()
    if init == model_out:
        raise ConfigError(f"--init-from {init_from} is train.output_dir/model, which training "
                          "overwrites; set train.output_dir to another directory")


def adopt_tasks(model: MultiTaskModel, fitted: list[Task], source: Path) -> None:
    """Check the config's tasks against the saved ones and give the saved tasks the config's
    data settings (dataset, label column), keeping their label order and statistics."""
    want, have = [t.name for t in fitted], list(model.tasks)
    if sorted(want) != sorted(have):
        raise ConfigError(f"--init-from {source}: the model has tasks {have}, the config has {want}; "
                          "continued training needs the same task names")
    for task in fitted:
        saved = model.tasks[task.name]
        for option in FIXED_OPTIONS:
            if getattr(task.config, option) != getattr(saved.config, option):
                raise ConfigError(
                    f"--init-from {source}: task {task.name!r} has {option}: {getattr(saved.config, option)} "
                    f"in the model but {getattr(task.config, option)} in the config; make them equal")
        extra = [label for label in task.labels if label not in saved.labels]
        if extra:
            raise ConfigError(
                f"--init-from {source}: task {task.name!r} has label(s) {extra} in the new data that "
                f"the model does not know (it has {saved.labels}); remove those rows, or train a new "
                "model without --init-from")
        saved.config = task.config


def load_init_model(init_from: str | Path, fitted: list[Task], config: RunConfig) -> MultiTaskModel:
    source = Path(init_from)
    model = MultiTaskModel.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)
    adopt_tasks(model, fitted, source)
    if config.model.model_dump() != model.config.model_dump():
        log.info("--init-from: using the model options saved in %s, not the config's model: section",
                 source)
    log.info("continued training from %s (tasks %s)", source, list(model.tasks))
    return model


def compare(old: dict[str, Any], new: dict[str, Any], tasks: list[Task],
            tolerance: float) -> dict[str, dict[str, Any]]:
    """Per task: both primary dev scores, the drop (positive = worse, sign-aware) and verdict."""
    verdicts = {}
    for task in tasks:
        key = f"{task.name}/{task.primary_metric}"
        before, after = old.get(key), new.get(key)
        verdict: dict[str, Any] = {"metric": task.primary_metric, "higher_is_better": task.higher_is_better,
                                   "init": before, "new": after}
        if before is None or after is None:
            verdicts[task.name] = {**verdict, "drop": None, "ok": True,
                                   "reason": "no dev labels for this task: not compared"}
            continue
        drop = (before - after) if task.higher_is_better else (after - before)
        ok = drop <= tolerance
        reason = (f"{task.primary_metric} {before:.6g} -> {after:.6g}: "
                  + ("within tolerance" if ok else f"dropped by {drop:.6g} > tolerance {tolerance:g}"))
        verdicts[task.name] = {**verdict, "drop": drop, "ok": ok, "reason": reason}
    return verdicts


def gate(prepared, out: Path, init_from: str | Path, new_dev: dict[str, Any],
         device: torch.device) -> dict[str, Any]:
    """Score the init model on dev like the new one, then promote or restore; returns the
    decision that is also written to ``<out>/promotion.json``."""
    config = prepared.config.train
    init = MultiTaskModel.from_pretrained(init_from, device=device,
                                          trust_remote_code=prepared.config.model.trust_remote_code)
    old_dev = evaluate_groups(init, prepared.split("dev"), config.eval_batch_size, config.precision)
    verdicts = compare(old_dev, new_dev, prepared.tasks, config.promotion_tolerance)
    promoted = all(v["ok"] for v in verdicts.values())
    if not promoted:
        with atomic_dir(out / "model", "model") as tmp:
            shutil.copytree(init_from, tmp, dirs_exist_ok=True)
        failed = {name: v["reason"] for name, v in verdicts.items() if not v["ok"]}
        log.warning("new model NOT promoted (%s); %s keeps the weights of %s", failed,
                    out / "model", init_from)
    else:
        log.info("new model promoted: no task's primary dev metric dropped by more than %g",
                 config.promotion_tolerance)
    decision = {"promoted": promoted, "init_from": str(init_from), "tolerance": config.promotion_tolerance,
                "tasks": verdicts}
    write_text(out / PROMOTION_FILE, json.dumps(decision, indent=2))
    return decision
