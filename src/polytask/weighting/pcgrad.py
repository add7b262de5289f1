"""PCGrad: project each task gradient off the gradients it conflicts with, then sum."""

from __future__ import annotations

from typing import Any

from torchjd.aggregation import PCGrad

from polytask.weighting.base import BALANCERS
from polytask.weighting.gradient import GradientBalancer


@BALANCERS.register("pcgrad")
class PCGradBalancer(GradientBalancer):
    """PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning"), torchjd's aggregator.

    The order in which each gradient is projected is drawn from torch's global RNG, which the
    trainer checkpoints, so a resumed run draws the same orders. No options.
    """

    def build_aggregator(self, options: dict[str, Any]) -> PCGrad:
        return PCGrad()
