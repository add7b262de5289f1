"""Dynamic Weight Average: weigh each task by how slowly its loss has been falling."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from polytask.config import WeightingConfig
from polytask.weighting.base import BALANCERS, Balancer, check_option, resolve_options


def dwa_weights(older: list[float], newer: list[float], temperature: float) -> list[float]:
    """λ_k = K·softmax(r/T)_k with r_k = L_k(t-1)/L_k(t-2): positive, summing to K."""
    rates = torch.tensor([n / o for o, n in zip(older, newer)], dtype=torch.float64)
    return (len(rates) * torch.softmax(rates / temperature, dim=0)).tolist()


@BALANCERS.register("dwa")
class DynamicWeightAverage(Balancer):
    """DWA (Liu, Johns & Davison 2019, "End-to-End Multi-Task Learning with Attention").

    The paper compares the average losses of the last two epochs. Here a "window" ends at each
    dev evaluation (``on_evaluation``) or, with option ``window: N``, after every N backward calls
    (micro-batches; then evaluations are ignored). The weights of the tasks in a batch are
    λ = K·softmax(r/T) over those K tasks, so they sum to K; they are 1 until every one of them
    has averages from two finished windows. The averages and the running sums are plain floats
    in ``extra_state_dict``.

    Options: ``temperature`` T (> 0, default 2 as in the paper) and ``window`` (null or N > 0).
    """

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        options = resolve_options(config, {"temperature": 2.0, "window": None})
        check_option(options["temperature"] > 0, config, "temperature", "> 0")
        window = options["window"]
        check_option(window is None or (isinstance(window, int) and window > 0), config, "window",
                     "null or a positive integer")
        self.temperature, self.window = float(options["temperature"]), window
        self.history: list[dict[str, float]] = []         # averages of the last two windows
        self.sums: dict[str, list[float]] = {}            # task -> [sum, count] in this window
        self.calls = 0

    def backward(self, losses: dict[str, torch.Tensor], shared_params: list[nn.Parameter],
                 features: torch.Tensor | None = None) -> dict[str, float]:
        logs = super().backward(losses, shared_params, features)
        for name, loss in losses.items():
            entry = self.sums.setdefault(name, [0.0, 0])
            entry[0] += float(loss.detach())
            entry[1] += 1
        self.calls += 1
        if self.window is not None and self.calls % self.window == 0:
            self.close_window()
        return logs

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        names = list(losses)
        if len(self.history) < 2 or not all(n in h for h in self.history for n in names):
            return {name: 1.0 for name in names}
        older, newer = ([h[n] for n in names] for h in self.history)
        if any(o == 0 or not math.isfinite(n / o) for o, n in zip(older, newer)):
            return {name: 1.0 for name in names}
        return dict(zip(names, dwa_weights(older, newer, self.temperature)))

    def on_evaluation(self, metrics: dict[str, Any], step: int) -> None:
        if self.window is None:
            self.close_window()

    def close_window(self) -> None:
        if self.sums:
            averages = {name: total / count for name, (total, count) in self.sums.items()}
            self.history = [*self.history, averages][-2:]
        self.sums = {}

    def extra_state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "sums": self.sums, "calls": self.calls}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.history, self.sums, self.calls = state["history"], state["sums"], state["calls"]
