"""FAMO: balance the rates at which task losses fall, from loss values only (no gradients)."""

from __future__ import annotations

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.weighting.base import (BALANCERS, Balancer, check_option, resolve_options, stack_losses,
                                     task_index)

EPS = 1e-8
BETAS = (0.9, 0.999)  # the Adam of the official code, as torch.optim.Adam's defaults


def famo_objective(losses: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(c·Σ z_i log L_i, the coefficients c·z_i/L_i of each ∇L_i in its gradient), z = softmax(logits),
    c = 1/Σ z_i/L_i held constant: the coefficients are positive and sum to 1."""
    z = torch.softmax(logits, dim=0)
    shifted = losses + EPS
    coefficients = (z / shifted).detach()
    c = 1.0 / coefficients.sum()
    return c * (z * torch.log(shifted)).sum(), c * coefficients


@BALANCERS.register("famo")
class FAMO(Balancer):
    """FAMO (Liu et al. 2023, "FAMO: Fast Adaptive Multitask Optimization").

    The task logits w are not learned by the trainer's optimizer: as in the official code an
    internal Adam (learning rate ``lr``, weight decay ``gamma``) steps them with
    ∇_w softmax(w)·δ, δ_i = log L_i(before) − log L_i(after). The paper recomputes the losses
    on the same batch after the optimizer step; the trainer gives no such hook, so "after" is the
    next backward call's loss (another batch: noisier, no extra forward), and the update is
    skipped when that call holds a different set of tasks. Logits, Adam moments and the previous
    log-losses are buffers (checkpointed). ``weight/<task>`` logs c·z_i/L_i, the coefficient of
    each task's gradient; these sum to 1 over the tasks of the batch.

    Options: ``lr`` (default 0.025) and ``gamma`` (default 1e-3, the paper's Algorithm 2).
    """

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = resolve_options(config, {"lr": 0.025, "gamma": 1e-3})
        check_option(options["lr"] >= 0, config, "lr", ">= 0")
        check_option(options["gamma"] >= 0, config, "gamma", ">= 0")
        self.lr, self.gamma = float(options["lr"]), float(options["gamma"])
        n = len(task_names)
        self.register_buffer("logits", torch.zeros(n))
        self.register_buffer("exp_avg", torch.zeros(n))
        self.register_buffer("exp_avg_sq", torch.zeros(n))
        self.register_buffer("adam_steps", torch.zeros(n))
        self.register_buffer("previous", torch.full((n,), float("nan")))  # log-losses, NaN = absent

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        index = task_index(self.task_names, losses).to(self.logits.device)
        values = stack_losses(losses)
        current = torch.log(values.detach() + EPS).to(self.logits)
        present = torch.zeros_like(self.previous, dtype=torch.bool)
        present[index] = True
        if bool(torch.isfinite(self.previous).eq(present).all()):
            self.update_logits(index, self.previous[index] - current)
        self.previous.fill_(float("nan"))
        self.previous[index] = current
        objective, coefficients = famo_objective(values, self.logits[index].to(values))
        self.run_backward(objective)
        return {f"weight/{name}": float(c) for name, c in zip(losses, coefficients)}

    @torch.no_grad()
    def update_logits(self, index: torch.Tensor, delta: torch.Tensor) -> None:
        """One Adam step on the logits of the present tasks (torch.optim.Adam's update rule)."""
        w = self.logits[index]
        z = torch.softmax(w, dim=0)
        grad = z * (delta - (z * delta).sum()) + self.gamma * w  # Jᵀδ of the softmax, + L2 decay
        steps = self.adam_steps[index] + 1
        m = BETAS[0] * self.exp_avg[index] + (1 - BETAS[0]) * grad
        v = BETAS[1] * self.exp_avg_sq[index] + (1 - BETAS[1]) * grad * grad
        m_hat, v_hat = m / (1 - BETAS[0] ** steps), v / (1 - BETAS[1] ** steps)
        self.logits[index] = w - self.lr * m_hat / (v_hat.sqrt() + EPS)
        self.exp_avg[index], self.exp_avg_sq[index], self.adam_steps[index] = m, v, steps
