"""UPGrad: project every task gradient onto the dual cone of all of them, then average."""

from __future__ import annotations

from typing import Any

from torchjd.aggregation import UPGrad

from polytask.weighting.base import BALANCERS
from polytask.weighting.gradient import GradientBalancer
from polytask.weighting.projection import LeastSquaresProjector


@BALANCERS.register("upgrad")
class UPGradBalancer(GradientBalancer):
    """UPGrad (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"), torchjd's
    aggregator: the update never conflicts with any task gradient (it lies in their dual cone).

    Options: ``norm_eps`` and ``reg_eps`` of the dual-cone projection (see projection.py, which
    replaces torchjd's quadprog-based default).
    """

    defaults = {"norm_eps": 1e-4, "reg_eps": 1e-4}

    def build_aggregator(self, options: dict[str, Any]) -> UPGrad:
        return UPGrad(projector=LeastSquaresProjector(options["norm_eps"], options["reg_eps"]))
