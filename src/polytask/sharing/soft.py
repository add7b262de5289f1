"""Soft parameter sharing (Duong et al., 2015): one encoder copy per task, pulled together.

Each task (or each group of tasks, option ``groups: [[a, b], [c]]``) reads its own copy of the
pretrained encoder; all copies start equal. The penalty ``lambda * sum_i ||theta_i - mean||^2``
over every trainable encoder weight keeps them close; ``pairwise: true`` uses
``lambda * sum_{i<j} ||theta_i - theta_j||^2`` instead, which equals n times the first form (n
copies), so it is computed through that identity. The trainer adds the penalty to the loss once
per optimizer step, outside the balancer: it is not a task loss to be weighted.

Tasks of one group share their copy (hard sharing inside the group). The first group reads the
model's own encoder, the others ``sharing.encoder_copies.<i>``. There is no single shared
feature tensor, so gradient balancers need ``weighting.gradients_on: parameters``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from polytask.config import SharingConfig, TaskConfig
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing, check_option
from polytask.sharing.usage import used_parameters


@SHARINGS.register("soft")
class SoftSharing(Sharing):
    defaults = {"lambda": 0.01, "pairwise": False, "groups": None}
    has_shared_features = False

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        groups = self.options["groups"] or [[name] for name in self.task_names]
        self.group_of = {name: i for i, group in enumerate(groups) for name in group}
        self.encoder_copies = nn.ModuleList(copy.deepcopy(encoder) for _ in groups[1:])

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        value = options["lambda"]
        check_option(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
                     config, "lambda", "a number >= 0")
        check_option(isinstance(options["pairwise"], bool), config, "pairwise", "true or false")
        groups, names = options["groups"], [t.name for t in tasks]
        if groups is not None:
            flat = [n for group in groups for n in group] if isinstance(groups, list) else []
            check_option(all(isinstance(g, list) and g for g in groups) and sorted(flat) == sorted(names),
                         config, "groups", f"a list of non-empty task lists naming each of {names} once")
        return options

    def encoders(self) -> list[nn.Module]:
        return [self.encoder, *self.encoder_copies]

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        hidden: dict[int, torch.Tensor] = {}
        for name in tasks:
            group = self.group_of[name]
            if group not in hidden:
                hidden[group] = self.encoders()[group](**inputs).last_hidden_state
        return SharedOutput({name: hidden[self.group_of[name]] for name in tasks})

    def regularization(self) -> torch.Tensor | None:
        encoders = self.encoders()
        if len(encoders) < 2 or self.options["lambda"] == 0:
            return None
        total = None
        for weights in zip(*(e.parameters() for e in encoders)):
            if not weights[0].requires_grad:
                continue
            stacked = torch.stack(weights)
            term = (stacked - stacked.mean(0)).pow(2).sum()
            total = term if total is None else total + term
        if total is None:
            return None
        scale = len(encoders) if self.options["pairwise"] else 1
        return self.options["lambda"] * scale * total

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for e in self.encoders() for p in e.parameters() if p.requires_grad]

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        return used_parameters(self.encoders()[self.group_of[task]])
