"""GradVac: raise the cosine of each pair of task gradients towards its running average."""

from __future__ import annotations

from typing import Any

import torch
from torchjd.aggregation import GradVac

from polytask.config import WeightingConfig
from polytask.weighting.base import BALANCERS, check_option
from polytask.weighting.gradient import GradientBalancer


@BALANCERS.register("gradvac")
class GradVacBalancer(GradientBalancer):
    """Gradient Vaccine (Wang et al. 2021, "Gradient Vaccine: Investigating and Improving
    Multi-task Optimization in Massively Multilingual Models"), torchjd's aggregator.

    torchjd keeps the EMA cosine targets for the rows it is given, and resets them when their
    number changes; a polytask batch may hold any subset of the tasks (tasks reading different
    datasets). So the targets of every task pair live here, in a checkpointed buffer, and torchjd
    sees the block of the tasks present. The visiting order is drawn from torch's global RNG,
    which the trainer checkpoints.

    Options: ``beta`` (EMA rate of the targets, in [0, 1]) and ``eps``.
    """

    defaults = {"beta": 0.5, "eps": 1e-8}

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        self.register_buffer("targets", torch.zeros(len(task_names), len(task_names)))

    def build_aggregator(self, options: dict[str, Any]) -> GradVac:
        check_option(0.0 <= options["beta"] <= 1.0, self.config, "beta", "in [0, 1]")
        check_option(options["eps"] >= 0, self.config, "eps", ">= 0")
        return GradVac(beta=float(options["beta"]), eps=float(options["eps"]))

    def weigh(self, names: list[str], matrix: torch.Tensor) -> torch.Tensor:
        return self._with_targets(names, matrix.dtype, lambda: super(GradVacBalancer, self).weigh(names, matrix))

    def weigh_gramian(self, names: list[str], gramian: torch.Tensor) -> torch.Tensor:
        return self._with_targets(names, gramian.dtype,
                                  lambda: super(GradVacBalancer, self).weigh_gramian(names, gramian))

    def _with_targets(self, names: list[str], dtype: torch.dtype, weigh) -> torch.Tensor:
        """``weigh()`` with torchjd's targets set to the block of the tasks in ``names``."""
        index = torch.tensor([self.task_names.index(name) for name in names])
        weighting = self.aggregator.gramian_weighting
        # torchjd 0.18 keeps its state in these private fields (computed on the CPU).
        weighting._phi_t = self.targets[index][:, index].to("cpu", dtype).clone()
        weighting._state_key = (len(names), dtype)
        weights = weigh()
        self.targets[index.unsqueeze(1), index] = weighting._phi_t.to(self.targets)
        # Left set, torchjd's copy would enter state_dict() and break loading into a fresh run.
        weighting._phi_t, weighting._state_key = None, None
        return weights
