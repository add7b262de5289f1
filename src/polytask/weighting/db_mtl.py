"""DB-MTL: balance loss scales with a log transform and gradient magnitudes to the largest."""

from __future__ import annotations

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.weighting.base import (BALANCERS, Balancer, check_option, resolve_options, stack_losses,
                                     task_index)
from polytask.weighting.gradient import feature_request, gradient_inputs, task_gradients

EPS = 1e-8


@BALANCERS.register("db_mtl")
class DualBalancing(Balancer):
    """DB-MTL (Lin et al. 2023, "Dual-Balancing for Multi-Task Learning").

    Loss-scale balancing: every task contributes log(L_i) instead of L_i. Gradient-magnitude
    balancing: the paper keeps an EMA ĝ_i of each task's gradient of log L_i (rate β/t^σ, as in
    LibMTL) and scales every task to the largest: Σ_i (max_j ‖ĝ_j‖ / ‖ĝ_i‖)·ĝ_i. Feature
    gradients change shape from batch to batch, so here the EMA is of the gradient *norms* and
    the scale factor α_i = max_j n̂_j / n̂_i multiplies the current log-loss: the update is
    Σ_i α_i ∇log L_i (no momentum on the direction). Norms are taken w.r.t. the shared features
    (``gradients_on: features``, default) or the shared parameters. EMAs are buffers.

    Options: ``beta`` (default 0.9) and ``beta_sigma`` (default 0.5).
    """

    supports_fp16 = False

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = resolve_options(config, {"beta": 0.9, "beta_sigma": 0.5}, uses_gradients=True)
        self.feature_layer, self.exact_layer = feature_request(config)
        check_option(0 <= options["beta"] < 1, config, "beta", "in [0, 1)")
        check_option(options["beta_sigma"] >= 0, config, "beta_sigma", ">= 0")
        self.beta, self.beta_sigma = float(options["beta"]), float(options["beta_sigma"])
        self.register_buffer("norm_ema", torch.zeros(len(task_names)))
        self.register_buffer("steps", torch.zeros(len(task_names)))

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        index = task_index(self.task_names, losses).to(self.norm_ema.device)
        logs = torch.log(stack_losses(losses) + EPS)
        norms = task_gradients(list(logs), gradient_inputs(self.config, shared_params, features, list(logs)))
        norms = norms.norm(dim=1).to(self.norm_ema)
        steps = self.steps[index] + 1
        rate = self.beta / steps ** self.beta_sigma
        ema = norms + rate * (self.norm_ema[index] - norms)
        self.norm_ema[index], self.steps[index] = ema, steps
        scales = ema.max() / (ema + EPS)
        # ∇log L ignores the 1/grad_accum share the trainer put on L: divide it back in.
        (scales.to(logs) * logs).sum().div(self.micro_batches).backward()
        return {f"weight/{name}": float(s) for name, s in zip(losses, scales)}
