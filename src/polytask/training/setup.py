"""Everything a run needs before its first step: validated data, fitted tasks, the model and
tokenized features per input group and split."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from polytask.config import RunConfig
from polytask.data.features import Feature, build_features
from polytask.data.records import Record
from polytask.data.validation import validate
from polytask.models.encoder import load_encoder
from polytask.models.multitask import MultiTaskModel
from polytask.tasks.base import Task, build_task
from polytask.training.promotion import load_init_model

log = logging.getLogger(__name__)
SPLITS = ("train", "dev", "test")


@dataclass
class Prepared:
    config: RunConfig
    model: MultiTaskModel
    groups: dict[str, list[Task]]                       # dataset -> tasks reading it
    features: dict[str, dict[str, list[Feature]]] = field(default_factory=dict)  # split -> group -> features

    @property
    def tasks(self) -> list[Task]:
        return list(self.model.tasks.values())

    def split(self, name: str) -> dict[str, tuple[list[Task], list[Feature]]]:
        return {g: (self.groups[g], f) for g, f in self.features.get(name, {}).items() if f}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit_tasks(config: RunConfig, records: dict[str, dict[str, list[Record]]]) -> list[Task]:
    tasks = []
    for task_config in config.tasks:
        task = build_task(task_config)
        train = records[task_config.dataset]["train"]
        task.fit([task.parse(r.fields.get(task_config.label), r.words)[0] for r in train])
        tasks.append(task)
    return tasks


def prepare(config: RunConfig, splits: tuple[str, ...] = SPLITS,
            init_from: str | Path | None = None) -> Prepared:
    """Validate all data first (nothing is written on bad input), then build the model, or
    with ``init_from`` load that saved model to continue training it (training/promotion.py)."""
    records = validate(config, splits)
    tasks = fit_tasks(config, records)
    if init_from is not None:
        model = load_init_model(init_from, tasks, config)
        seed_everything(config.train.seed)
    else:
        seed_everything(config.train.seed)  # a tabular encoder starts from random weights
        encoder, tokenizer = load_encoder(config.model, fit_on=(config.datasets, records))
        seed_everything(config.train.seed)  # head initialisation depends on the seed only
        model = MultiTaskModel(encoder, tokenizer, tasks, config.model)
    tokenizer = model.tokenizer
    groups = {name: [model.tasks[t.name] for t in config.tasks_of(name)] for name in config.datasets}
    prepared = Prepared(config, model, groups)
    for split in splits:
        prepared.features[split] = {
            group: build_features(records[group].get(split, []), group_tasks, tokenizer,
                                  model.config.max_length, with_targets=split in ("train", "dev"))
            for group, group_tasks in groups.items()
        }
    sizes = {g: len(f) for g, f in prepared.features["train"].items()}
    log.info("training examples per input group: %s", sizes)
    return prepared
