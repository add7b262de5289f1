"""Multi-gate Mixture-of-Experts (Ma et al., 2018) on the shared encoder output.

``experts`` MLPs (H -> ``expert_hidden`` -> H) read every token of the encoder output; each
task has a gate, a softmax over the experts computed per token, and reads

    features_t = h + sum_e gate_t(h)_e * expert_e(h)

The residual ``h +`` (and zero-initialised expert outputs) lets training start from the
pretrained features, as hard sharing does; the experts then learn what each task adds.
The shared features are the encoder output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polytask.config import SharingConfig, TaskConfig
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing, check_option
from polytask.sharing.usage import used_parameters


def expert(hidden: int, inner: int) -> nn.Module:
    out = nn.Linear(inner, hidden)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), out)


def check_count(config: SharingConfig, options: dict[str, Any], name: str, least: int) -> None:
    value = options[name]
    check_option(isinstance(value, int) and not isinstance(value, bool) and value >= least,
                 config, name, f"a whole number >= {least}")


def mixture(hidden: torch.Tensor, weights: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``hidden`` plus the expert ``outputs`` ([E, B, T, H]) mixed by gate ``weights`` ([B, T, E])."""
    return hidden + torch.einsum("bte,ebth->bth", weights.to(hidden.dtype), outputs)


@SHARINGS.register("mmoe")
class MMoE(Sharing):
    defaults = {"experts": 4, "expert_hidden": 256}

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        hidden, count = encoder.config.hidden_size, self.options["experts"]
        self.experts = nn.ModuleList(expert(hidden, self.options["expert_hidden"]) for _ in range(count))
        self.gates = nn.ModuleDict({name: nn.Linear(hidden, count) for name in self.task_names})

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        check_count(config, options, "experts", 1)
        check_count(config, options, "expert_hidden", 1)
        return options

    def gate_weights(self, hidden: torch.Tensor, task: str) -> torch.Tensor:
        """[B, T, experts]: how much ``task`` reads each expert at each token."""
        return torch.softmax(self.gates[task](hidden).float(), dim=-1)

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        out = self.encoder(**inputs, output_hidden_states=torch.is_grad_enabled())
        hidden = out.last_hidden_state
        outputs = torch.stack([e(hidden) for e in self.experts])
        return SharedOutput({name: mixture(hidden, self.gate_weights(hidden, name), outputs) for name in tasks},
                            shared=hidden, hidden_states=out.hidden_states)

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        return [*used_parameters(self.encoder), *self.experts.parameters(), *self.gates[task].parameters()]
