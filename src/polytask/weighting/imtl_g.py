"""IMTL-G: the update has equal projections on every (normalised) task gradient."""

from __future__ import annotations

from typing import Any

from torchjd.aggregation import IMTLG

from polytask.weighting.base import BALANCERS
from polytask.weighting.gradient import GradientBalancer


@BALANCERS.register("imtl_g")
class IMTLGBalancer(GradientBalancer):
    """IMTL-G (Liu et al. 2021, "Towards Impartial Multi-task Learning"), in torchjd's form that
    also accepts linearly dependent gradients (Quinton & Rey 2024). No options."""

    def build_aggregator(self, options: dict[str, Any]) -> IMTLG:
        return IMTLG()
