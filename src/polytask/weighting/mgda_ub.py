"""MGDA-UB: MGDA's weights from the gradients w.r.t. the shared representation, on the losses."""

from __future__ import annotations

import torch
from torch import nn
from torchjd.aggregation import MGDAWeighting

from polytask.config import PartialJacobian, WeightingConfig
from polytask.errors import ConfigError
from polytask.weighting.base import BALANCERS, Balancer, check_option, resolve_options, stack_losses
from polytask.weighting.gradient import feature_request, task_gradients

EPS = 1e-8
NORMALIZATIONS = ("none", "l2", "loss", "loss+")


def normalize_gradients(matrix: torch.Tensor, losses: torch.Tensor, how: str) -> torch.Tensor:
    """Rows divided by ‖g_i‖ (l2), L_i (loss), L_i·‖g_i‖ (loss+) or 1, as in the official code."""
    norms = matrix.norm(dim=1)
    scale = {"none": torch.ones_like(norms), "l2": norms, "loss": losses.to(norms),
             "loss+": losses.to(norms) * norms}[how]
    return matrix / (scale + EPS).unsqueeze(1)


@BALANCERS.register("mgda_ub")
class MGDAUpperBound(Balancer):
    """MGDA-UB (Sener & Koltun 2018, "Multi-Task Learning as Multi-Objective Optimization").

    The Frank-Wolfe min-norm weights (torchjd's MGDAWeighting) are computed from the gradients
    w.r.t. the shared representation (the features) — the paper's upper-bound trick — and then
    weight the *losses*: one backward of Σ α_i L_i, so heads get α_i-scaled gradients too (unlike
    ``mgda``, which aggregates only the shared part). The weights sum to 1. Being defined on the
    representation, it rejects ``gradients_on: parameters`` (use ``mgda`` for that).

    Options: ``normalization`` (none, l2, loss, loss+; default loss+ as the official code),
    ``epsilon`` and ``max_iters`` of the solver.
    """

    supports_fp16 = False

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = resolve_options(config, {"normalization": "loss+", "epsilon": 1e-3, "max_iters": 100},
                                  uses_gradients=True)
        if not config.needs_shared_features or isinstance(config.gradients_on, PartialJacobian):
            raise ConfigError("weighting 'mgda_ub' works on feature gradients by definition; remove "
                              "gradients_on: parameters, or use 'mgda' with gradients_on: parameters")
        self.feature_layer, self.exact_layer = feature_request(config)
        check_option(options["normalization"] in NORMALIZATIONS, config, "normalization",
                     "one of " + ", ".join(NORMALIZATIONS))
        check_option(options["epsilon"] > 0, config, "epsilon", "> 0")
        check_option(isinstance(options["max_iters"], int) and options["max_iters"] > 0, config,
                     "max_iters", "a positive integer")
        self.normalization = options["normalization"]
        self.solver = MGDAWeighting(epsilon=float(options["epsilon"]), max_iters=options["max_iters"])

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        if features is None:
            raise ValueError("weighting 'mgda_ub' needs the shared features passed to backward()")
        values = stack_losses(losses)
        matrix = normalize_gradients(task_gradients(list(losses.values()), [features]).float(),
                                     values.detach(), self.normalization)
        weights = self.solver(matrix @ matrix.T)
        (weights.to(values) * values).sum().backward()
        return {f"weight/{name}": float(w) for name, w in zip(losses, weights)}
