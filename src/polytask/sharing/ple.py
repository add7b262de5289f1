"""Customized Gate Control, the building block of Progressive Layered Extraction (Tang et
al., 2020), on the shared encoder output.

Like MMoE, but besides ``experts`` shared experts each task has ``task_experts`` of its own;
task t's gate is a softmax over its own experts and the shared ones only:

    features_t = h + sum_e gate_t(h)_e * expert_e(h),  e in own(t) ∪ shared

One extraction level (CGC); the encoder below already is the deep shared part. Same residual
and zero-initialised experts as ``mmoe``. The shared features are the encoder output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polytask.config import SharingConfig, TaskConfig
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing
from polytask.sharing.mmoe import check_count, expert, mixture
from polytask.sharing.usage import used_parameters


@SHARINGS.register("ple")
class PLE(Sharing):
    defaults = {"experts": 2, "task_experts": 1, "expert_hidden": 256}

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        hidden, inner = encoder.config.hidden_size, self.options["expert_hidden"]
        shared, own = self.options["experts"], self.options["task_experts"]
        self.experts = nn.ModuleList(expert(hidden, inner) for _ in range(shared))
        self.task_experts = nn.ModuleDict(
            {name: nn.ModuleList(expert(hidden, inner) for _ in range(own)) for name in self.task_names})
        self.gates = nn.ModuleDict({name: nn.Linear(hidden, own + shared) for name in self.task_names})

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        check_count(config, options, "experts", 0)
        check_count(config, options, "task_experts", 0)
        check_count(config, options, "expert_hidden", 1)
        if options["experts"] + options["task_experts"] == 0:
            check_count(config, options, "experts", 1)
        return options

    def gate_weights(self, hidden: torch.Tensor, task: str) -> torch.Tensor:
        """[B, T, own + shared experts]: how much ``task`` reads each of its experts."""
        return torch.softmax(self.gates[task](hidden).float(), dim=-1)

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        out = self.encoder(**inputs, output_hidden_states=torch.is_grad_enabled())
        hidden = out.last_hidden_state
        shared = [e(hidden) for e in self.experts]
        per_task = {}
        for name in tasks:
            outputs = torch.stack([e(hidden) for e in self.task_experts[name]] + shared)
            per_task[name] = mixture(hidden, self.gate_weights(hidden, name), outputs)
        return SharedOutput(per_task, shared=hidden, hidden_states=out.hidden_states)

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        return [*used_parameters(self.encoder), *self.experts.parameters(),
                *self.task_experts[task].parameters(), *self.gates[task].parameters()]
