"""Validation-adaptive weighting: tasks whose dev metric lags behind get more weight."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from polytask.config import WeightingConfig
from polytask.errors import ConfigError
from polytask.weighting.base import BALANCERS, Balancer, check_option, resolve_options

log = logging.getLogger(__name__)

# The default metric of a task: the first of these it reports, and whether higher is better
# (the primary metrics of the built-in task types come first).
PREFERENCE = (("accuracy", True), ("f1", True), ("micro_f1", True), ("macro_f1", True),
              ("pearson", True), ("spearman", True), ("mse", False), ("rmse", False), ("mae", False))
LOWER_IS_BETTER = ("mse", "rmse", "mae", "loss")


def adaptive_weights(lags: list[float], tau: float, low: float, high: float) -> list[float]:
    """n·softmax(lag/τ) (so they sum to n before clipping), each clipped to [low, high]."""
    raw = torch.softmax(torch.tensor(lags, dtype=torch.float64) / tau, dim=0) * len(lags)
    return raw.clamp(low, high).tolist()


@BALANCERS.register("validation_adaptive")
class ValidationAdaptive(Balancer):
    """A bounded rule in the spirit of dynamic task prioritisation (Guo et al. 2018, "Dynamic
    Task Prioritization for Multitask Learning"), driven by dev metrics instead of train KPIs.

    At each evaluation, for every task, lag = (best_so_far − current) / max(|best_so_far|, eps)
    of its metric (sign flipped when lower is better), or, with ``targets: {task: value}``, the
    relative gap to the target instead (negative once the target is beaten). Then
    w_i = n·exp(lag_i/τ)/Σ_j exp(lag_j/τ), clipped to [min_weight, max_weight] (clipping can move
    the sum off n). Weights are 1 until the first evaluation and constant between evaluations;
    a task with no finite dev metric gets lag 0.

    The metric of a task is ``metrics: {task: "task/key"}`` if given (lower is better when the
    key ends in mse, rmse, mae or loss), else the first of PREFERENCE that the task reports.

    Options: ``tau`` (1.0), ``min_weight`` (0.1), ``max_weight`` (10.0), ``eps`` (1e-8),
    ``targets`` ({}), ``metrics`` ({}).
    """

    def __init__(self, task_names: list[str], config: WeightingConfig) -> None:
        super().__init__(task_names, config)
        defaults = {"tau": 1.0, "min_weight": 0.1, "max_weight": 10.0, "eps": 1e-8, "targets": {},
                    "metrics": {}}
        options = resolve_options(config, defaults)
        check_option(options["tau"] > 0, config, "tau", "> 0")
        check_option(0 <= options["min_weight"] <= options["max_weight"], config, "min_weight",
                     "between 0 and max_weight")
        for key in ("targets", "metrics"):
            unknown = sorted(set(options[key]) - set(task_names)) if isinstance(options[key], dict) else None
            check_option(unknown == [], config, key, f"a mapping from task names {task_names}")
        self.options = options
        self.current: dict[str, float] = {name: 1.0 for name in task_names}
        self.best: dict[str, float] = {}

    def weights(self, losses: dict[str, torch.Tensor]) -> dict[str, float]:
        return {name: self.current[name] for name in losses}

    def on_evaluation(self, metrics: dict[str, Any], step: int) -> None:
        lags = [self.lag(name, metrics) for name in self.task_names]
        options = self.options
        weights = adaptive_weights(lags, options["tau"], options["min_weight"], options["max_weight"])
        self.current = dict(zip(self.task_names, weights))
        log.debug("step %d: validation-adaptive weights %s", step, self.current)

    def lag(self, task: str, metrics: dict[str, Any]) -> float:
        key, higher = self.metric_of(task, metrics)
        value = metrics.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return 0.0
        sign = 1.0 if higher else -1.0
        if task in self.options["targets"]:
            reference = float(self.options["targets"][task])
        else:
            best = self.best.get(task, value)
            reference = self.best[task] = max(best, value) if higher else min(best, value)
        return sign * (reference - value) / max(abs(reference), self.options["eps"])

    def metric_of(self, task: str, metrics: dict[str, Any]) -> tuple[str, bool]:
        key = self.options["metrics"].get(task)
        if key is not None:
            if key not in metrics:
                raise ConfigError(f"weighting.options.metrics: {key!r} is not a dev metric; reported: "
                                  f"{sorted(k for k in metrics if k.startswith(task + '/'))}")
            return key, not key.endswith(LOWER_IS_BETTER)
        for name, higher in PREFERENCE:
            if f"{task}/{name}" in metrics:
                return f"{task}/{name}", higher
        return "", True  # no dev metric for this task: lag 0

    def extra_state_dict(self) -> dict[str, Any]:
        return {"current": self.current, "best": self.best}

    def load_extra_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.current, self.best = state["current"], state["best"]
