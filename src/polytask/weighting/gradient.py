"""Shared plumbing of the gradient methods: per-task gradients, an aggregator, one backward.

With ``gradients_on: features`` (the default) the per-task gradients are taken w.r.t. the
shared features (the encoder output every head reads): one cheap backward per task through
its head only. The aggregated feature gradient then replaces the summed one on its way into
the encoder, so each head still gets exactly its own task's gradient. With ``parameters`` the
per-task gradients are the rows of the full Jacobian w.r.t. the shared parameters (torchjd's
``mtl_backward``: heads get their own gradient, the encoder gets a Jacobian), which costs one
encoder backward per task.

Aggregators come from torchjd (``torchjd.aggregation``); a method only says which one.

Under data parallelism (``training/distributed.py``) the per-task gradient matrix is combined
across ranks before aggregation: averaged for parameters, gathered side by side for features.
Every rank aggregates the same matrix (that of the global batch), so weights and balancer state
agree everywhere and equal a single process's on the same global batch (docs/scale.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn
from torchjd.aggregation import WeightedAggregator
from torchjd.autojac import mtl_backward

from polytask.config import WeightingConfig
from polytask.weighting.base import Balancer, current_distributed, resolve_options


def task_gradients(losses: list[torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
    """The [tasks, n] matrix whose row i is d losses[i] / d inputs, flattened; keeps the graph.

    Under data parallelism, the matrix of the global batch (identical on every rank): per-task
    gradients are combined across ranks BEFORE anything aggregates them or reads their norms."""
    return global_task_gradients(local_task_gradients(losses, inputs), inputs)


def global_task_gradients(matrix: torch.Tensor, inputs: list[torch.Tensor]) -> torch.Tensor:
    """``matrix`` (this rank's) combined over ranks; a no-op on one process. Parameters are the
    same on every rank (averaged); features belong to this rank's rows (gathered side by side)."""
    per_example = not all(isinstance(x, nn.Parameter) for x in inputs)
    return current_distributed().global_task_gradients(matrix, per_example)


def local_task_gradients(losses: list[torch.Tensor], inputs: list[torch.Tensor]) -> torch.Tensor:
    """``task_gradients`` of this process's batch only."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(x) if g is None else g).reshape(-1)
                               for g, x in zip(grads, inputs)]))
    return torch.stack(rows)


def gradient_inputs(config: WeightingConfig, shared_params: list[nn.Parameter],
                    features: torch.Tensor | None) -> list[torch.Tensor]:
    """What per-task gradients are taken w.r.t., following ``weighting.gradients_on``."""
    if config.gradients_on == "parameters":
        return list(shared_params)
    if features is None:
        raise ValueError(f"weighting {config.name!r} with gradients_on: features needs the shared "
                         "features passed to backward()")
    return [features]


def cosines(names: list[str], gramian: torch.Tensor) -> dict[str, float]:
    """Pairwise cosine similarity of the task gradients, from their Gramian."""
    norms = gramian.diagonal().clamp(min=0).sqrt()
    out = {}
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            denominator = float(norms[i] * norms[j])
            value = float(gramian[i, j]) / denominator if denominator > 0 else 0.0
            out[f"cosine/{a}|{names[j]}"] = value
    return out


@contextlib.contextmanager
def replaced_gradient(tensor: torch.Tensor, gradient: torch.Tensor) -> Iterator[None]:
    """During a backward, let ``gradient`` flow on from ``tensor`` instead of the accumulated one."""
    handle = tensor.register_hook(lambda _: gradient)
    try:
        yield
    finally:
        handle.remove()


class GradientBalancer(Balancer):
    """Base of the gradient-aggregation methods; subclasses give ``build_aggregator``.

    The logged ``weight/<task>`` is the coefficient of each task's gradient in the update of
    the shared part (heads always get their own task's unweighted gradient).
    """

    supports_fp16 = False
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        self.options = resolve_options(config, self.defaults, uses_gradients=True)
        self.aggregator = self.build_aggregator(self.options)

    def build_aggregator(self, options: dict[str, Any]) -> WeightedAggregator:
        raise NotImplementedError

    def weigh(self, names: list[str], matrix: torch.Tensor) -> torch.Tensor:
        """The aggregation weights of the rows of ``matrix`` (one row per task in ``names``)."""
        return self.aggregator.weighting(matrix)

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        if len(losses) < 2:  # one task: nothing to balance
            sum(losses.values()).backward()
            return {f"weight/{name}": 1.0 for name in losses}
        names = list(losses)
        if self.config.gradients_on == "parameters":
            weights, gramian = self._parameters_backward(losses, shared_params, features)
        else:
            inputs = gradient_inputs(self.config, shared_params, features)
            weights, gramian = self._features_backward(losses, inputs[0])
        logs = {f"weight/{name}": float(w) for name, w in zip(names, weights)}
        return {**logs, **cosines(names, gramian)}

    def _features_backward(self, losses: dict[str, torch.Tensor],
                           features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        local = local_task_gradients(list(losses.values()), [features])
        matrix = global_task_gradients(local, [features])  # = local on one process
        weights = self.weigh(list(losses), matrix)
        # This rank's part of the direction; the trainer averages the encoder gradients it
        # produces over ranks, which makes them those of the global batch.
        direction = (weights.to(local.dtype) @ local).reshape(features.shape)
        with replaced_gradient(features, direction):
            sum(losses.values()).backward()
        return weights, matrix @ matrix.T

    def _parameters_backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                             features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if features is None:
            raise ValueError("gradients_on: parameters needs the shared features to tell heads apart")
        # torchjd finds the shared parameters in the graph of the features itself: some encoder
        # parameters (e.g. BERT's pooler) are not in it and must get no Jacobian.
        mtl_backward(list(losses.values()), features)
        params = [p for p in shared_params if hasattr(p, "jac")]
        jacobians = [p.jac.reshape(p.jac.shape[0], -1) for p in params]
        for p in params:
            del p.jac
        matrix = global_task_gradients(torch.cat(jacobians, dim=1), params)  # rank average
        weights = self.weigh(list(losses), matrix)
        for p, jacobian in zip(params, jacobians):
            step = (weights.to(jacobian.dtype) @ jacobian).reshape(p.shape)
            p.grad = step if p.grad is None else p.grad + step
        return weights, matrix @ matrix.T
