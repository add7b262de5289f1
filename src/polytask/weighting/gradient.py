"""Shared plumbing of the gradient methods: per-task gradients, an aggregator, one backward.

With ``gradients_on: features`` (the default) the per-task gradients are taken w.r.t. a shared
hidden state, by default the input of the top two Transformer layers (``DEFAULT_FEATURE_LAYER``;
``{features: layer, layer: i}`` picks another, -1 = the encoder output every head reads): one
cheap backward per task through the layers above it and the heads. The aggregated gradient
then replaces the summed one on its way down, so each head and each layer above the point
gets the plain sum of its tasks' gradients (a head: exactly its own task's). Below the top,
attention has mixed the positions each task reads ([CLS] for a sentence task, the words for a
tagger), so their gradients meet there; at the encoder output they are (nearly) disjoint and
their cosine is 0 (docs/weighting.md, section 4, has the measurements).

With ``parameters`` the per-task gradients are the rows of the full Jacobian w.r.t. the shared
parameters (torchjd's ``mtl_backward``: heads get their own gradient, the encoder gets a
Jacobian), which costs one encoder backward per task. ``{parameters: last_layers, k}`` is a
partial Jacobian: the rows w.r.t. the parameters of the top k layers only (T backward passes
through those layers), aggregated there; every parameter below, and the heads, get the plain
summed gradient (k = 0: equal weighting; k covering every trainable layer: ``parameters``).

Aggregators come from torchjd (``torchjd.aggregation``); a method only says which one.

Under data parallelism (``distributed.py``) the per-task gradient matrix is combined
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

from polytask.config import FeaturePoint, PartialJacobian, WeightingConfig
from polytask.distributed import current as current_distributed
from polytask.weighting.autogram import GramianEngine, resolve_engine
from polytask.weighting.base import Balancer, resolve_options

#: Hidden state where ``gradients_on: features`` takes per-task gradients: the input of the top
#: two layers. Chosen by measurement (benchmarks/feature_point.py, docs/weighting.md section 4).
DEFAULT_FEATURE_LAYER = -3


def feature_request(config: WeightingConfig) -> tuple[int | None, bool]:
    """(hidden-state index, exact) that ``weighting.gradients_on`` asks the model for as the
    ``features`` of backward(); None = the shared tensor (what ``parameters`` differentiates)."""
    where = config.gradients_on
    if isinstance(where, PartialJacobian):
        return -1 - where.k, True  # its layers begin there, frozen or not
    if isinstance(where, FeaturePoint):
        return where.layer, False
    return (DEFAULT_FEATURE_LAYER if where == "features" else None), False


def feature_layer(config: WeightingConfig) -> int:
    """The feature point of a run (relatedness measures there whatever the method)."""
    where = config.gradients_on
    return where.layer if isinstance(where, FeaturePoint) else DEFAULT_FEATURE_LAYER


def leaves_below(tensor: torch.Tensor) -> set[int]:
    """ids of the leaf tensors (parameters) that ``tensor`` was computed from, by autograd."""
    leaves, seen, stack = set(), set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, "variable"):  # AccumulateGrad: the node of a leaf
            leaves.add(id(node.variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return leaves


def top_parameters(shared_params: list[nn.Parameter], boundary: torch.Tensor,
                   losses: list[torch.Tensor]) -> list[nn.Parameter]:
    """The trainable shared parameters above ``boundary`` (the input of the top k layers) that
    the losses use (BERT's pooler, say, is shared but unused: it must get no row)."""
    below, used = leaves_below(boundary), set().union(*(leaves_below(loss) for loss in losses))
    return [p for p in shared_params if p.requires_grad and id(p) in used and id(p) not in below]


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
    if not inputs:  # e.g. a partial Jacobian with k = 0: no columns
        return torch.zeros(len(losses), 0, device=losses[0].device)
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(x) if g is None else g).reshape(-1)
                               for g, x in zip(grads, inputs)]))
    return torch.stack(rows)


def gradient_inputs(config: WeightingConfig, shared_params: list[nn.Parameter],
                    features: torch.Tensor | None, losses: list[torch.Tensor]) -> list[torch.Tensor]:
    """What per-task gradients are taken w.r.t., following ``weighting.gradients_on``."""
    if config.gradients_on == "parameters":
        return list(shared_params)
    if features is None:
        raise ValueError(f"weighting {config.name!r} with gradients_on: {config.gradients_on} needs "
                         "the shared features passed to backward()")
    if isinstance(config.gradients_on, PartialJacobian):
        return top_parameters(shared_params, features, losses)
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
    with replaced_gradients([tensor], [gradient]):
        yield


@contextlib.contextmanager
def replaced_gradients(tensors: list[torch.Tensor], gradients: list[torch.Tensor]) -> Iterator[None]:
    """``replaced_gradient`` for several tensors (on a parameter: what accumulates in .grad)."""
    handles = [t.register_hook(lambda _, g=g: g) for t, g in zip(tensors, gradients)]
    try:
        yield
    finally:
        for handle in handles:
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
        self.feature_layer, self.exact_layer = feature_request(config)
        self.engine = resolve_engine(config, self.aggregator)  # ConfigError at start-up
        self.gramian_engine: GramianEngine | None = None

    def attach(self, model: nn.Module, dev: dict[str, Any] | None = None) -> None:
        """With the autogram engine, hook the model's shared modules (before any forward pass)."""
        self.engine = resolve_engine(self.config, self.aggregator, current_distributed().active)
        if self.engine == "autogram" and self.gramian_engine is None:
            self.gramian_engine = GramianEngine(model, model.shared_parameters())

    def build_aggregator(self, options: dict[str, Any]) -> WeightedAggregator:
        raise NotImplementedError

    def weigh(self, names: list[str], matrix: torch.Tensor) -> torch.Tensor:
        """The aggregation weights of the rows of ``matrix`` (one row per task in ``names``)."""
        return self.aggregator.weighting(matrix)

    def weigh_gramian(self, names: list[str], gramian: torch.Tensor) -> torch.Tensor:
        """The weights from the Gramian of the task gradients alone (the autogram engine)."""
        return self.aggregator.gramian_weighting(gramian)

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        if len(losses) < 2:  # one task: nothing to balance
            sum(losses.values()).backward()
            return {f"weight/{name}": 1.0 for name in losses}
        names = list(losses)
        if self.config.gradients_on == "parameters" and self.gramian_engine is not None:
            weights, gramian = self._gramian_backward(losses, features)
        elif self.config.gradients_on == "parameters":
            weights, gramian = self._parameters_backward(losses, shared_params, features)
        elif isinstance(self.config.gradients_on, PartialJacobian):
            weights, gramian = self._partial_backward(
                losses, gradient_inputs(self.config, shared_params, features, list(losses.values())))
        else:
            inputs = gradient_inputs(self.config, shared_params, features, list(losses.values()))
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

    def _gramian_backward(self, losses: dict[str, torch.Tensor],
                          features: torch.Tensor | list[torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``_parameters_backward`` from the Gramian: weights, then the weighted gradient flows
        into the shared part while every head keeps its own task's unweighted gradient.
        ``features``: the shared tensor, or the per-task ones of a strategy that has none."""
        if features is None:
            raise ValueError("gradients_on: parameters needs the shared features to tell heads apart")
        values = list(losses.values())
        gramian = self.gramian_engine.gramian(values)
        weights = self.weigh_gramian(list(losses), gramian)
        weighted = sum(w * loss for w, loss in zip(weights.to(values[0].dtype), values))
        points = features if isinstance(features, list) else [features]
        grads = torch.autograd.grad(weighted, points, retain_graph=True, allow_unused=True)  # heads only
        directions = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, points)]
        with replaced_gradients(points, directions):
            sum(values).backward()
        return weights, gramian

    def _partial_backward(self, losses: dict[str, torch.Tensor],
                          top: list[nn.Parameter]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the Jacobian w.r.t. the top layers' parameters, aggregated into their .grad;
        one plain backward of the summed losses gives every other parameter its gradient."""
        if not top:  # k = 0: nothing to aggregate, equal weighting
            sum(losses.values()).backward()
            return torch.ones(len(losses)), torch.zeros(len(losses), len(losses))
        local = local_task_gradients(list(losses.values()), top)
        matrix = global_task_gradients(local, top)  # rank average (parameters)
        weights = self.weigh(list(losses), matrix)
        step = weights.to(local.dtype) @ local
        pieces = list(step.split([p.numel() for p in top])) if top else []
        with replaced_gradients(top, [g.view_as(p) for g, p in zip(pieces, top)]):
            sum(losses.values()).backward()
        return weights, matrix @ matrix.T
