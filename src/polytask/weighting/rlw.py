"""Random loss weighting: fresh random task weights at every backward."""

from __future__ import annotations

import torch

from polytask.config import WeightingConfig
from polytask.weighting.base import BALANCERS, Balancer, resolve_options


def random_weights(count: int) -> torch.Tensor:
    """softmax of standard normal noise: positive, summing to 1. Drawn on the CPU from torch's
    global RNG, which the trainer seeds and checkpoints, so runs and resumes repeat the draws."""
    return torch.softmax(torch.randn(count), dim=0)


@BALANCERS.register("rlw")
class RandomLossWeighting(Balancer):
    """RLW (Lin et al. 2021, "Reasonable Effectiveness of Random Weighting: A Litmus Test for
    Multi-Task Learning"), normal-softmax variant: weights sum to 1 over the tasks of the batch,
    so the mean update is 1/n of equal weighting's. No options."""

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        resolve_options(config, {})

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(zip(losses, random_weights(len(losses))))
