"""GradNorm: tune the task weights so that weighted gradient norms follow each task's progress."""

from __future__ import annotations

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.weighting.base import (BALANCERS, Balancer, check_option, resolve_options, stack_losses,
                                     task_index)
from polytask.weighting.gradient import feature_request, gradient_inputs, task_gradients


def gradnorm_step(weights: torch.Tensor, norms: torch.Tensor, ratios: torch.Tensor,
                  alpha: float, lr: float) -> torch.Tensor:
    """One gradient step of L_grad = Σ_i |w_i‖g_i‖ − mean_j(w_j‖g_j‖)·r_i^α| on w (the target
    held constant, as in the paper), then renormalised to keep Σ w and kept positive."""
    scaled = weights * norms
    target = scaled.mean() * (ratios / ratios.mean()) ** alpha
    stepped = (weights - lr * torch.sign(scaled - target) * norms).clamp(min=1e-6)
    return stepped * weights.sum() / stepped.sum()


@BALANCERS.register("gradnorm")
class GradNorm(Balancer):
    """GradNorm (Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing
    in Deep Multitask Networks").

    The paper measures ‖∇_W w_i L_i‖ at the last shared layer W. Here W is the shared features
    (``gradients_on: features``, default: one cheap backward per task through its head) or all
    shared parameters (``parameters``). r_i = (L_i/L_i(0)) / mean_j(L_j/L_j(0)), with L_i(0) the
    task's first loss seen. The weights are updated inside each backward call by plain gradient
    descent with their own rate ``lr`` (not the trainer's optimizer: the paper gives them their
    own step size, unaffected by the encoder's warm-up and decay); the present tasks' weights
    keep their sum (n in total, as in the paper). Weights and initial losses are buffers.

    Options: ``alpha`` (restoring-force strength, default 1.5) and ``lr`` (default 0.025).
    """

    supports_fp16 = False

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = resolve_options(config, {"alpha": 1.5, "lr": 0.025}, uses_gradients=True)
        self.feature_layer, self.exact_layer = feature_request(config)
        check_option(options["alpha"] >= 0, config, "alpha", ">= 0")
        check_option(options["lr"] > 0, config, "lr", "> 0")
        self.alpha, self.lr = float(options["alpha"]), float(options["lr"])
        self.register_buffer("task_weights", torch.ones(len(task_names)))
        self.register_buffer("initial_losses", torch.full((len(task_names),), float("nan")))

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        index = task_index(self.task_names, losses).to(self.task_weights.device)
        values = stack_losses(losses)
        first = self.initial_losses[index]
        self.initial_losses[index] = torch.where(torch.isnan(first), values.detach().to(first), first)
        norms = task_gradients(list(losses.values()), gradient_inputs(self.config, shared_params, features, list(losses.values())))
        norms = norms.norm(dim=1).to(self.task_weights)
        weights = self.task_weights[index]
        ratios = values.detach().to(weights) / self.initial_losses[index]
        self.task_weights[index] = gradnorm_step(weights, norms, ratios, self.alpha, self.lr)
        (weights.to(values) * values).sum().backward()
        return {f"weight/{name}": float(w) for name, w in zip(losses, weights)}
