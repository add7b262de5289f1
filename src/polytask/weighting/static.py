"""Equal weighting (the plain sum of task losses) and static per-task weights from the config."""

from __future__ import annotations

import torch

from polytask.config import WeightingConfig
from polytask.errors import ConfigError
from polytask.weighting.base import BALANCERS, Balancer, resolve_options


@BALANCERS.register("equal")
class Equal(Balancer):
    """EW: every task weighs 1. With well-tuned learning rates this is a strong baseline
    (Kurin et al. 2022, "In Defense of the Unitary Scalarization for Deep MTL")."""

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        resolve_options(config, {})

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return {name: 1.0 for name in losses}


@BALANCERS.register("static")
class Static(Balancer):
    """Fixed weights from ``weighting.weights`` (tasks not listed weigh 1)."""

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        if config.options:
            raise ConfigError("weighting 'static' takes no options; set weighting.weights instead")
        given = config.weights or {}
        unknown = sorted(set(given) - set(task_names))
        if unknown:
            raise ConfigError(f"weighting.weights names unknown task(s) {unknown}; tasks: {task_names}")
        if any(w < 0 for w in given.values()):
            raise ConfigError("weighting.weights must be >= 0")
        self.fixed = {name: float(given.get(name, 1.0)) for name in task_names}

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return {name: self.fixed[name] for name in losses}
