"""Aligned-MTL: align the principal components of the task gradients before combining them."""

from __future__ import annotations

from typing import Any

from torchjd.aggregation import AlignedMTL

from polytask.weighting.base import BALANCERS, check_option
from polytask.weighting.gradient import GradientBalancer


@BALANCERS.register("aligned_mtl")
class AlignedMTLBalancer(GradientBalancer):
    """Aligned-MTL (Senushkin et al. 2023, "Independent Component Alignment for Multi-Task
    Learning"), torchjd's aggregator.

    Options: ``scale_mode`` — ``min`` (smallest eigenvalue, the paper), ``median`` or ``rmse``.
    """

    defaults = {"scale_mode": "min"}

    def build_aggregator(self, options: dict[str, Any]) -> AlignedMTL:
        check_option(options["scale_mode"] in ("min", "median", "rmse"), self.config, "scale_mode",
                     "one of min, median, rmse")
        return AlignedMTL(scale_mode=options["scale_mode"])
