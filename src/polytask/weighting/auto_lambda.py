"""Auto-Lambda: task weights learned by a one-step look-ahead on dev batches (meta-learning)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.errors import ConfigError
from polytask.distributed import current as current_distributed
from polytask.weighting.base import BALANCERS, Balancer, check_option, resolve_options, task_index
from polytask.weighting.dev_objective import DevObjective

#: (trainable parameters by name, draw) -> the dev loss at those parameters (a scalar with graph).
DevLoss = Callable[[dict[str, torch.Tensor], int], torch.Tensor]


def flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """d loss / d params as one vector (zeros where unused); keeps the graph."""
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)])


@BALANCERS.register("auto_lambda")
class AutoLambda(Balancer):
    """Auto-Lambda (Liu, Johns & Davison 2022, "Auto-Lambda: Disentangling Dynamic Task
    Relationships"): the weights w minimise the dev loss one (virtual) SGD step ahead,

        w <- clip(w - lr * d L_dev(theta - alpha * grad_theta sum_i w_i L_i) / dw, min, max),

    over every trainable parameter theta (encoder and heads). The derivative is exact, not
    Auto-Lambda's finite difference: d L_dev / dw_i = -alpha * grad L_dev(theta') . grad L_i(theta),
    one dot product per task (T backward passes over the step's graph, one gradient alive at a
    time), plus one dev forward/backward at theta'. The training step then uses the new weights.

    The dev loss is the sum of the ``primary`` tasks' losses (default: every task; name a subset
    for auxiliary learning) on a dev batch. Dev batches come from the run's dev split, drawn as a
    pure function of the update count (so resume is bit-exact); a run without dev data is refused.
    The dev pass runs in eval mode (no dropout).

    The meta-gradient's scale is that of gradient dot products, which differs by orders of
    magnitude between tasks and models; with ``normalize`` (default) it is divided by its largest
    absolute value, so ``lr`` is the change of the most affected weight per update (scale-free,
    like Auto-Lambda's Adam step); ``normalize: false`` is the plain step above.

    Options: ``lr`` (0.01, the meta step beta), ``alpha`` (1e-4, the virtual step; about the
    model's learning rate), ``normalize`` (true), ``update_every`` (1, steps between meta
    updates), ``dev_batch_size`` (32), ``primary`` ([]: every task), ``min_weight`` (0.0),
    ``max_weight`` (10.0).
    """

    defaults: dict[str, Any] = {"lr": 0.01, "alpha": 1e-4, "normalize": True, "update_every": 1,
                                "dev_batch_size": 32, "primary": [], "min_weight": 0.0, "max_weight": 10.0}

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = self.options = resolve_options(config, self.defaults)
        check_option(options["lr"] > 0, config, "lr", "> 0")
        check_option(options["alpha"] > 0, config, "alpha", "> 0")
        check_option(isinstance(options["normalize"], bool), config, "normalize", "true or false")
        for key in ("update_every", "dev_batch_size"):
            check_option(isinstance(options[key], int) and options[key] > 0, config, key, "a positive integer")
        check_option(0 <= options["min_weight"] <= options["max_weight"], config, "min_weight",
                     "between 0 and max_weight")
        primary = options["primary"]
        check_option(isinstance(primary, list) and set(primary) <= set(task_names), config, "primary",
                     f"a list of task names from {task_names}")
        self.register_buffer("lambdas", torch.ones(len(task_names)))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.params: dict[str, nn.Parameter] = {}
        self.dev_loss: DevLoss | None = None

    def attach(self, model: nn.Module, dev: dict[str, Any] | None = None) -> None:
        """The run's model and dev split (``Prepared.split("dev")``): the meta objective."""
        if current_distributed().active:
            raise ConfigError("weighting 'auto_lambda' is single-process: its virtual step would use "
                              "this rank's gradient only; run without torchrun/accelerate")
        if not dev:
            raise ConfigError("weighting 'auto_lambda' learns the weights on dev batches: give a dev "
                              "file (datasets.<name>.dev) or choose another weighting")
        objective = DevObjective(model, dev, self.options["dev_batch_size"], self.options["primary"])
        self.use_objective(dict(model.named_parameters()), objective)

    def use_objective(self, params: dict[str, nn.Parameter], dev_loss: DevLoss) -> None:
        """Learn the weights against ``dev_loss`` over the trainable ``params``."""
        self.params = {name: p for name, p in params.items() if p.requires_grad}
        self.dev_loss = dev_loss

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: self.lambdas[self.task_names.index(name)] for name in losses}

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        if self.dev_loss is None:
            raise RuntimeError("auto_lambda: attach(model, dev) must be called before training")
        logs, period = {}, self.options["update_every"] * self.micro_batches  # calls per update
        if int(self.calls) % period == 0:
            logs = self.meta_update(losses, int(self.calls) // period)
        self.calls += 1
        return {**super().backward(losses, shared_params, features), **logs}

    def meta_update(self, losses: dict[str, torch.Tensor], draw: int) -> dict[str, float]:
        """One step on the weights of the tasks in ``losses`` against dev batch ``draw`` (the
        step's graph is kept for the training backward)."""
        index, names = task_index(self.task_names, losses), list(self.params)
        params, scale = list(self.params.values()), float(self.micro_batches)  # losses are 1/micro
        weighted = sum(self.lambdas[i] * loss for i, loss in zip(index.tolist(), losses.values()))
        step = flat_grad(weighted, params) * scale
        virtual, offset = {}, 0
        for name, p in zip(names, params):
            virtual[name] = (p - self.options["alpha"] * step[offset:offset + p.numel()].view_as(p)).detach()
            virtual[name].requires_grad_(True)
            offset += p.numel()
        dev = self.dev_loss(virtual, draw)
        direction = flat_grad(dev, list(virtual.values())).detach()
        dots = torch.stack([flat_grad(loss, params) @ direction for loss in losses.values()]) * scale
        meta_gradient = -self.options["alpha"] * dots
        move = meta_gradient / meta_gradient.abs().max().clamp(min=1e-30) if self.options["normalize"] else meta_gradient
        updated = self.lambdas[index] - self.options["lr"] * move.to(self.lambdas)
        self.lambdas[index] = updated.clamp(self.options["min_weight"], self.options["max_weight"])
        return {"auto_lambda/dev_loss": float(dev.detach()),
                **{f"auto_lambda/meta_grad/{n}": float(g) for n, g in zip(losses, meta_gradient)}}
