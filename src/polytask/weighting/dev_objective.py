"""The dev loss of a model at other parameter values: the meta objective of learned task weights.

Dev batches are drawn as a pure function of a draw number (round-robin over the dev datasets,
then through a fixed shuffle of each), so a resumed run sees the same batches without any
stream state in the checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from polytask.data.batches import collate, to_device
from polytask.data.features import Feature
from polytask.errors import ConfigError


def with_targets(feature: Feature, tasks: list) -> Feature:
    """``feature`` with the training targets of ``tasks``, encoded as build_features encodes train
    targets where it was built with golds only (dev features, before they carried targets)."""
    if all(t.name in feature.targets for t in tasks):
        return feature
    targets = {t.name: t.encode(feature.golds[t.name], feature.word_ids) for t in tasks}
    return dataclasses.replace(feature, targets=targets)


class _Losses(nn.Module):
    """The model's task losses on a batch as one forward (so heads used by a loss, e.g. a CRF's
    transitions, are reparametrised too)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, Any], tasks: list) -> dict[str, torch.Tensor]:
        logits = self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                            [t.name for t in tasks])
        return {t.name: t.loss(logits[t.name], batch["targets"][t.name], batch["present"][t.name],
                               batch["attention_mask"], head=self.model.heads[t.name])
                for t in tasks if bool(batch["present"][t.name].any())}


class DevObjective:
    """``objective(params, draw)``: the summed dev loss of the ``primary`` tasks (every task when
    empty) on dev batch number ``draw``, with the model's trainable parameters replaced by
    ``params`` (name -> tensor); computed in eval mode (no dropout)."""

    def __init__(self, model: nn.Module, dev: dict[str, tuple[list, list]], batch_size: int,
                 primary: list[str]) -> None:
        self.losses, self.model, self.batch_size = _Losses(model), model, batch_size
        self.dev = {}
        for group, (tasks, features) in dev.items():
            tasks = [t for t in tasks if not primary or t.name in primary]
            self.dev[group] = (tasks, [with_targets(f, tasks) for f in features])
        self.groups = [g for g in sorted(dev) if self.dev[g][0]]  # datasets with a primary task
        if not self.groups:
            raise ConfigError(f"weighting.options.primary {primary}: none of these tasks has dev data")

    def batch(self, draw: int) -> tuple[dict[str, Any], list]:
        group = self.groups[draw % len(self.groups)]
        tasks, features = self.dev[group]
        turn = draw // len(self.groups)
        per_pass = max(1, -(-len(features) // self.batch_size))
        order = np.random.default_rng([turn // per_pass, len(features)]).permutation(len(features))
        start = (turn % per_pass) * self.batch_size
        rows = [features[i] for i in order[start:start + self.batch_size]]
        device = next(self.model.parameters()).device
        return to_device(collate(rows, tasks, self.model.tokenizer.pad_token_id), device), tasks

    def __call__(self, params: dict[str, torch.Tensor], draw: int) -> torch.Tensor:
        batch, tasks = self.batch(draw)
        was_training = self.model.training
        self.model.eval()
        try:
            prefixed = {f"model.{name}": value for name, value in params.items()}
            losses = torch.func.functional_call(self.losses, prefixed, (batch, tasks))
        finally:
            self.model.train(was_training)
        if not losses:
            return sum(p.sum() * 0.0 for p in params.values())  # no primary label in this batch
        return sum(losses.values())
