"""Uncertainty weighting: each task's loss is scaled by a learned homoscedastic variance."""

from __future__ import annotations

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.weighting.base import BALANCERS, Balancer, resolve_options, stack_losses, task_index


def uncertainty_objective(losses: torch.Tensor, log_vars: torch.Tensor,
                          micro_batches: int = 1) -> torch.Tensor:
    """Σ_i exp(-s_i)·L_i + s_i, the classification form of Kendall et al. (eq. 10 without ½).
    Under gradient accumulation each L_i is a micro-batch's share, and so is s_i: summed over
    the micro-batches, the step's objective is that of one doubled batch."""
    return (torch.exp(-log_vars) * losses + log_vars / micro_batches).sum()


@BALANCERS.register("uncertainty")
class Uncertainty(Balancer):
    """Uncertainty weighting (Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using
    Uncertainty to Weigh Losses for Scene Geometry and Semantics").

    Convention: one learnable s_i = log σ_i² per task (an nn.Parameter of the balancer, so the
    trainer's optimizer learns it) and L = Σ_i exp(-s_i)·L_i + s_i for every task type. This is
    the paper's classification form; its regression form ½exp(-s_i)·L_i + ½s_i only halves the
    gradient and has the same optimum s_i = log L_i. ``weight/<task>`` logs exp(-s_i).

    Options: ``init`` (initial s_i; 0 gives weight 1).
    """

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = resolve_options(config, {"init": 0.0})
        self.log_vars = nn.Parameter(torch.full((len(task_names),), float(options["init"])))

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        log_vars = self.log_vars[task_index(self.task_names, losses).to(self.log_vars.device)]
        self.run_backward(uncertainty_objective(stack_losses(losses), log_vars, self.micro_batches))
        weights = torch.exp(-log_vars.detach())
        return {f"weight/{name}": float(w) for name, w in zip(losses, weights)}
