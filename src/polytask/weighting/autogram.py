"""``weighting.engine: autogram``: the task Gramian of the shared parameters, without the Jacobian.

With ``gradients_on: parameters`` a method whose weights depend on the task gradients only
through their inner products (UPGrad, MGDA, DualProj, IMTL-G, PCGrad, Aligned-MTL, CAGrad,
GradVac) needs the T x T Gramian G = J J^T, not the T x P Jacobian J. torchjd's
``autogram.Engine`` hooks the shared modules before the forward pass and accumulates G module by
module during one vmapped backward, so only one module's Jacobian block is alive at a time. The
balancer then turns G into weights and does one backward of the weighted losses (docs/weighting.md,
section 5, has the measurements).

Opt-in (the default is ``autojac``): on CPU it measured slower and heavier than the Jacobian, as
it needs one more backward and keeps the forward graph through its vmapped Gramian pass.

The engine differentiates whole-batch task losses (``batch_dim=None``): polytask's losses are
batch means, and BERT's position embeddings are not batched on dimension 0 anyway.
"""

from __future__ import annotations

import torch
from torch import nn
from torchjd.aggregation import GramianWeightedAggregator
from torchjd.autogram import Engine

from polytask.config import WeightingConfig
from polytask.errors import ConfigError


def resolve_engine(config: WeightingConfig, aggregator: object, distributed: bool = False) -> str:
    """``weighting.engine`` of this run, checked: autogram needs ``gradients_on: parameters``, a
    method whose weights need only the Gramian, and a single process."""
    if config.engine == "autojac":
        return "autojac"
    method = config.name
    if config.gradients_on != "parameters":
        raise ConfigError(f"weighting {method!r}: engine: autogram computes the Gramian of the "
                          "shared parameters; it needs gradients_on: parameters (or set engine: "
                          "autojac)")
    if not isinstance(aggregator, GramianWeightedAggregator):
        raise ConfigError(f"weighting {method!r} needs the task gradients themselves, not only "
                          "their Gramian; set weighting.engine: autojac")
    if distributed:
        raise ConfigError("weighting.engine: autogram sees this rank's batch only: the Gramian of "
                          "the global batch needs every rank's Jacobian; under data parallelism "
                          "set weighting.engine: autojac")
    return "autogram"


def covering_modules(module: nn.Module, shared: set[int]) -> list[nn.Module]:
    """The largest modules whose trainable parameters are all in ``shared`` (ids), together holding
    every one of them; none is inside another (torchjd's Engine needs that)."""
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    if not trainable & shared:
        return []
    if trainable <= shared:
        return [module]
    direct = {id(p) for p in module.parameters(recurse=False) if p.requires_grad}
    if direct & shared:
        raise ConfigError(f"weighting.engine: autogram: module {type(module).__name__} holds shared and "
                          "task-specific trainable parameters side by side; set weighting.engine: autojac")
    return [m for child in module.children() for m in covering_modules(child, shared)]


class GramianEngine:
    """torchjd's autogram Engine on a model's shared parameters, reset before every forward pass
    (a forward whose backward computed no Gramian, e.g. a batch of one task, leaves it a count)."""

    def __init__(self, model: nn.Module, shared_params: list[nn.Parameter]) -> None:
        modules = covering_modules(model, {id(p) for p in shared_params if p.requires_grad})
        self.engine = Engine(*modules, batch_dim=None)
        self._handle = model.register_forward_pre_hook(lambda *_: self.reset())

    def reset(self) -> None:
        # torchjd 0.18 resets these itself after each compute_gramian (pinned <0.19 in pyproject).
        engine = self.engine
        engine._gramian_accumulator.reset()
        engine._target_edges.reset()
        for computer in engine._gramian_computers.values():
            computer.reset()

    def gramian(self, losses: list[torch.Tensor]) -> torch.Tensor:
        """G[i, j] = <d losses[i]/d shared, d losses[j]/d shared>; keeps the graph for the backward."""
        return self.engine.compute_gramian(torch.stack(losses))

    def detach(self) -> None:
        """Remove every hook from the model."""
        self._handle.remove()
        self.engine._module_hook_manager.remove_hooks(self.engine._module_hook_manager._handles)
