"""Nash-MTL: the update is the Nash bargaining solution between the tasks."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchjd.aggregation import NashMTL

from polytask.errors import ConfigError
from polytask.weighting.base import BALANCERS
from polytask.weighting.gradient import GradientBalancer


@BALANCERS.register("nash_mtl")
class NashMTLBalancer(GradientBalancer):
    """Nash-MTL (Navon et al. 2022, "Multi-Task Learning as a Bargaining Game"), torchjd's
    aggregator. It solves a sequence of convex programs with cvxpy and ECOS, too much to
    re-implement, so the optional extra ``polytask[nash]`` (cvxpy + ecos; part of ``all``) is
    required; without it the run stops at start-up. Every batch must hold every task (the
    solver's state has one entry per task), i.e. all tasks read the same dataset.

    Options: ``max_norm`` (0 = no clipping of the update norm), ``update_weights_every``,
    ``optim_niter`` (torchjd's defaults).
    """

    defaults = {"max_norm": 1.0, "update_weights_every": 1, "optim_niter": 20}

    def build_aggregator(self, options: dict[str, Any]) -> NashMTL:
        try:
            return NashMTL(n_tasks=len(self.task_names), **options)
        except ImportError:
            raise ConfigError('weighting "nash_mtl" needs cvxpy and ecos, which are not installed: '
                              'pip install "polytask[nash]"') from None
        except ValueError as exc:
            raise ConfigError(f"weighting 'nash_mtl': {exc}") from None

    def weigh(self, names: list[str], matrix: torch.Tensor) -> torch.Tensor:
        if len(names) != len(self.task_names):
            raise ConfigError(f"weighting 'nash_mtl' needs every task in every batch; this batch has {names} "
                              f"of {self.task_names} (tasks reading different datasets)")
        return super().weigh(names, matrix)

    def extra_state_dict(self) -> dict[str, Any]:
        weighting = self.aggregator.weighting
        alpha = np.asarray(weighting.prvs_alpha)
        return {"step": weighting.step, "alpha": alpha.tolist(), "alpha_dtype": str(alpha.dtype)}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        weighting = self.aggregator.weighting
        weighting.step = state["step"]
        weighting.prvs_alpha = np.asarray(state["alpha"], dtype=state["alpha_dtype"])
        if weighting.step > 0:  # torchjd builds its cvxpy problem on the first call only
            weighting._init_optim_problem()
