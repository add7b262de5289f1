"""DualProj: the mean task gradient, projected onto the dual cone of all of them."""

from __future__ import annotations

from typing import Any

from torchjd.aggregation import DualProj

from polytask.weighting.base import BALANCERS
from polytask.weighting.gradient import GradientBalancer
from polytask.weighting.projection import LeastSquaresProjector


@BALANCERS.register("dualproj")
class DualProjBalancer(GradientBalancer):
    """DualProj (the projection of GEM, Lopez-Paz & Ranzato 2017, "Gradient Episodic Memory for
    Continual Learning", as torchjd's aggregator): the closest vector to the average gradient that
    conflicts with no task gradient. UPGrad projects each gradient before averaging; DualProj
    projects the average once.

    Options: ``norm_eps`` and ``reg_eps`` of the dual-cone projection (projection.py).
    """

    defaults = {"norm_eps": 1e-4, "reg_eps": 1e-4}

    def build_aggregator(self, options: dict[str, Any]) -> DualProj:
        return DualProj(projector=LeastSquaresProjector(options["norm_eps"], options["reg_eps"]))
