"""MGDA: the minimum-norm point of the convex hull of the task gradients."""

from __future__ import annotations

from typing import Any

from torchjd.aggregation import MGDA

from polytask.weighting.base import BALANCERS, check_option
from polytask.weighting.gradient import GradientBalancer


@BALANCERS.register("mgda")
class MGDABalancer(GradientBalancer):
    """MGDA (Désidéri 2012; Frank-Wolfe solver of Sener & Koltun 2018, "Multi-Task Learning as
    Multi-Objective Optimization"), torchjd's aggregator. The weights sum to 1.

    Options: ``epsilon`` (stop when the Frank-Wolfe step is below it) and ``max_iters``.
    """

    defaults = {"epsilon": 1e-3, "max_iters": 100}

    def build_aggregator(self, options: dict[str, Any]) -> MGDA:
        check_option(options["epsilon"] > 0, self.config, "epsilon", "> 0")
        check_option(isinstance(options["max_iters"], int) and options["max_iters"] > 0,
                     self.config, "max_iters", "a positive integer")
        return MGDA(epsilon=float(options["epsilon"]), max_iters=options["max_iters"])
