"""The Balancer interface: it turns per-task losses into gradients, doing backward itself.

Loss weighting (a weighted sum, then one backward) and gradient aggregation (per-task
gradients, then a combination) therefore share one call site in the trainer.
Balancers are nn.Modules so that learnable weights join the optimizer and the checkpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.errors import ConfigError
from polytask.registry import family

BALANCERS = family("weighting")


class Balancer(nn.Module):
    # Gradient methods combine per-task gradients; under fp16 loss scaling those would be the
    # scaled (possibly inf) gradients, so the trainer must reject fp16 for them.
    supports_fp16: ClassVar[bool] = True

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__()
        self.task_names = list(task_names)
        self.config = config
        # train.precision fp16: the trainer's torch.amp.GradScaler; run_backward scales with it.
        self.grad_scaler: torch.amp.GradScaler | None = None
        # train.grad_accum, set by the trainer's train_step: each loss handed to backward() is
        # 1/micro_batches of the step's. A linear method needs nothing more; one that adds a term
        # per call (uncertainty's log-variance) or whose update ignores the loss scale (log-losses)
        # divides by it, so an accumulated step is as large as one doubled batch.
        self.micro_batches = 1
        # Which tensor the trainer hands backward() as ``features``: None = the sharing strategy's
        # shared tensor, else the shared encoder's hidden state of that index (MultiTaskModel.
        # forward's feature_layer / exact_layer); methods that take gradients set it from
        # weighting.gradients_on (weighting/gradient.py, feature_request).
        self.feature_layer: int | None = None
        self.exact_layer = False

    def run_backward(self, objective: torch.Tensor) -> None:
        """``objective.backward()``, through the fp16 gradient scaler when there is one. Every
        method that supports fp16 does its backward here, so the scale also reaches the
        gradients of its own parameters (e.g. uncertainty's log-variances)."""
        if self.grad_scaler is not None and self.grad_scaler.is_enabled():
            objective = self.grad_scaler.scale(objective)
        objective.backward()

    def attach(self, model: nn.Module, dev: dict[str, Any] | None = None) -> None:
        """Called once by the trainer with the model and the dev split (``Prepared.split("dev")``,
        {dataset: (tasks, features)}), before the first forward pass: a method that hooks the
        model's modules (the autogram engine) or learns on dev batches (auto_lambda) does it here."""

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        """Accumulate gradients into ``.grad`` of every parameter that the losses depend on.

        ``features`` is the shared representation all heads read (the encoder output); it is a
        node of the losses' graph. Returns values to log, keyed ``weight/<task>`` for the weight
        each task received (and e.g. ``cosine/<a>|<b>`` for gradient methods).
        """
        weights = self.weights(losses)
        total = sum(weights[name] * loss for name, loss in losses.items())
        self.run_backward(total)
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


def resolve_options(config: WeightingConfig, defaults: dict[str, Any], *,
                    uses_gradients: bool = False) -> dict[str, Any]:
    """The method's options: ``defaults`` overridden by ``weighting.options``.

    A setting the method would silently ignore is a mistake in the config, so this rejects
    unknown option keys (listing the accepted ones), ``weighting.weights`` (static only) and an
    explicit ``gradients_on`` for a method that takes no gradients.
    """
    name = config.name
    unknown = sorted(set(config.options) - set(defaults))
    if unknown:
        accepted = ", ".join(sorted(defaults)) or "none"
        raise ConfigError(f"weighting {name!r}: unknown option(s) {unknown}; accepted: {accepted}")
    if config.weights is not None:
        raise ConfigError(f"weighting {name!r}: weighting.weights applies to 'static' only; remove it")
    for field in ("gradients_on", "engine"):
        if not uses_gradients and field in config.model_fields_set:
            raise ConfigError(f"weighting {name!r} takes no gradients; remove weighting.{field}")
    return {**defaults, **config.options}


def check_option(ok: bool, config: WeightingConfig, option: str, requirement: str) -> None:
    """Raise a ConfigError naming the option and what it must be unless ``ok``."""
    if not ok:
        value = config.options.get(option)
        raise ConfigError(f"weighting {config.name!r}: options.{option} must be {requirement}, got {value!r}")


def build_balancer(config: WeightingConfig, task_names: list[str]) -> Balancer:
    return BALANCERS.get(config.name)(task_names, config)


def stack_losses(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """The losses of a batch as one float32 vector, in the dict's order (keeps the graph)."""
    return torch.stack([loss.float() for loss in losses.values()])


def task_index(task_names: list[str], losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """Positions in ``task_names`` of the tasks present in a batch (per-task state is indexed by
    it: a batch holds only the tasks that read its dataset)."""
    return torch.tensor([task_names.index(name) for name in losses], dtype=torch.long)
