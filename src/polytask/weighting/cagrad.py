"""CAGrad: the update that maximises the worst task improvement near the average gradient."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torchjd.aggregation import GramianWeightedAggregator, Weighting

from polytask.weighting.base import BALANCERS, check_option
from polytask.weighting.gradient import GradientBalancer


class CAGradWeighting(Weighting):
    """Weights of CAGrad from the Gramian G of the task gradients, solved like the official
    code (Liu et al. 2021, Cranial-XIX/CAGrad): SLSQP over the simplex for
    min_w  wᵀG·1/m + c‖g₀‖·sqrt(wᵀGw), then d = g₀ + c‖g₀‖/‖g_w‖ · g_w, divided by
    1 (rescale 0), 1 + c² (rescale 1) or 1 + c (rescale 2).

    torchjd's CAGrad needs cvxpy (the extra ``torchjd[cagrad]``), which polytask does not
    install; the problem has one variable per task, so scipy (a dependency) solves it directly.
    """

    def __init__(self, c: float, rescale: int) -> None:
        super().__init__()
        self.c = c
        self.rescale = rescale

    def forward(self, gramian: torch.Tensor, /) -> torch.Tensor:
        G = gramian.detach().cpu().double().numpy()
        m = G.shape[0]
        mean = np.ones(m) / m
        radius = self.c * math.sqrt(max(G.mean(), 0.0) + 1e-8) + 1e-8

        def objective(w: np.ndarray) -> float:
            return float(w @ G @ mean + radius * math.sqrt(max(w @ G @ w, 0.0) + 1e-8))

        solved = minimize(objective, mean, bounds=[(0.0, 1.0)] * m,
                          constraints={"type": "eq", "fun": lambda w: 1.0 - w.sum()}).x
        norm = math.sqrt(max(solved @ G @ solved, 0.0))
        weights = mean + radius / (norm + 1e-8) * solved
        weights /= (1.0, 1.0 + self.c ** 2, 1.0 + self.c)[self.rescale]
        return torch.as_tensor(weights, device=gramian.device, dtype=gramian.dtype)


@BALANCERS.register("cagrad")
class CAGradBalancer(GradientBalancer):
    """CAGrad (Liu et al. 2021, "Conflict-Averse Gradient Descent for Multi-task Learning").

    Options: ``c`` (radius of the ball around the average gradient, >= 0; 0.4 is the paper's
    common choice) and ``rescale`` (0, 1 or 2, as in the official code; default 1).
    """

    defaults = {"c": 0.4, "rescale": 1}

    def build_aggregator(self, options: dict[str, Any]) -> GramianWeightedAggregator:
        check_option(options["c"] >= 0, self.config, "c", ">= 0")
        check_option(options["rescale"] in (0, 1, 2), self.config, "rescale", "0, 1 or 2")
        return GramianWeightedAggregator(CAGradWeighting(float(options["c"]), int(options["rescale"])))
