"""The Balancer interface: it turns per-task losses into gradients, doing backward itself.

Loss weighting (a weighted sum, then one backward) and gradient aggregation (per-task
gradients, then a combination) therefore share one call site in the trainer.
Balancers are nn.Modules so that learnable weights join the optimizer and the checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.registry import family

BALANCERS = family("weighting")


class Balancer(nn.Module):
    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__()
        self.task_names = list(task_names)
        self.config = config

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        """Accumulate gradients into ``.grad`` of every parameter that the losses depend on.

        ``features`` is the shared representation all heads read (the encoder output); it is a
        node of the losses' graph. Returns values to log, keyed ``weight/<task>`` for the weight
        each task received (and e.g. ``cosine/<a>|<b>`` for gradient methods).
        """
        weights = self.weights(losses)
        total = sum(weights[name] * loss for name, loss in losses.items())
        total.backward()
        return {f"weight/{name}": float(w) for name, w in weights.items()}

    def on_evaluation(self, metrics: dict[str, Any], step: int) -> None:
        """Called after each evaluation with the dev metrics (``task/metric`` keys)."""

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, Any]:
        raise NotImplementedError

    def extra_state_dict(self) -> dict[str, Any]:
        """Non-tensor state to checkpoint (loss histories...); tensors go in state_dict()."""
        return {}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        pass


def build_balancer(config: WeightingConfig, task_names: list[str]) -> Balancer:
    return BALANCERS.get(config.name)(task_names, config)
