"""Scalar regression (e.g. STS-B similarity scores): mean squared error on a linear head.

With ``normalize_target: true`` the head learns standardised targets (z-scores of the training
values) and predictions are mapped back, so a target measured in thousands does not swamp the
other tasks' losses; the mean and std are saved with the model.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from torch import nn
from torch.nn import functional as F

from polytask.config import TaskConfig
from polytask.tasks.base import TASK_TYPES, Task
from polytask.tasks.classification import linear_head

MIN_STD = 1e-8


@TASK_TYPES.register("regression")
class Regression(Task):
    primary_metric = "mse"
    higher_is_better = False

    def __init__(self, config: TaskConfig, labels: list[str] | None = None) -> None:
        super().__init__(config, labels)
        self.labels = []  # a regression target has no label set
        self.mean, self.std = 0.0, 1.0

    def parse(self, raw: Any, words: list[str] | None) -> tuple[Any, str | None]:
        # An empty cell is how CSV/TSV files write "no label", as for classification.
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            return None, None
        shown = raw.strip() if isinstance(raw, str) else raw
        not_number = f"{shown!r} is not a number; regression targets must be numeric"
        # bool is an int subclass, but True as a score of 1.0 is almost surely a wrong column.
        if isinstance(raw, bool):
            return None, not_number
        try:
            value = float(shown)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond float range
            return None, not_number
        if not math.isfinite(value):
            return None, f"{shown!r} is not a finite number; regression targets must be finite"
        return value, None

    def fit(self, train_values: list[Any]) -> None:
        values = np.asarray([v for v in train_values if v is not None], dtype=np.float64)
        if self.config.normalize_target and values.size:
            self.mean, self.std = float(values.mean()), max(float(values.std()), MIN_STD)
        else:
            self.mean, self.std = 0.0, 1.0

    def encode(self, value: Any, word_ids: list[int | None]) -> Any:
        return None if value is None else (value - self.mean) / self.std

    def collate(self, targets: list[Any], seq_len: int) -> torch.Tensor:
        # Unlabelled rows hold 0.0; the loss drops them through ``present``.
        return torch.tensor([0.0 if t is None else t for t in targets], dtype=torch.float)

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return linear_head(hidden_size, self.num_outputs, dropout)

    @property
    def num_outputs(self) -> int:
        return 1

    def loss(self, logits, target, present, attention_mask, head=None) -> torch.Tensor:
        flat = squeeze(logits)
        present = present.to(flat.device)
        if not bool(present.any()):
            return flat.sum() * 0.0  # zero that keeps the graph
        return F.mse_loss(flat[present], target[present].float())

    def decode(self, logits, word_ids, attention_mask, head=None) -> list[Any]:
        return (squeeze(logits) * self.std + self.mean).tolist()

    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        """Errors in the target's own units; correlations are 0.0 where undefined."""
        pred = np.asarray(predictions, dtype=np.float64)
        gold = np.asarray(golds, dtype=np.float64)
        if gold.size == 0:
            return {"mse": math.nan, "rmse": math.nan, "mae": math.nan,
                    "pearson": 0.0, "spearman": 0.0}
        mse = float(np.mean((pred - gold) ** 2))
        return {
            "mse": mse,
            "rmse": math.sqrt(mse),
            "mae": float(np.mean(np.abs(pred - gold))),
            "pearson": correlation(pearsonr, pred, gold),
            "spearman": correlation(spearmanr, pred, gold),
        }

    def state(self) -> dict[str, Any]:
        return {**super().state(), "mean": self.mean, "std": self.std}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.mean = float(state.get("mean", 0.0))
        self.std = float(state.get("std", 1.0))


def squeeze(logits: torch.Tensor) -> torch.Tensor:
    """[B, 1] head output -> [B] float values."""
    return logits.float().reshape(logits.size(0))


def correlation(method: Any, pred: np.ndarray, gold: np.ndarray) -> float:
    """scipy's correlation, with 0.0 where it is undefined (fewer than 2 points, constant input)."""
    if pred.size < 2:
        return 0.0
    with warnings.catch_warnings():
        # Constant input is common early in training (a head predicting one value); the NaN is
        # mapped to 0.0 below, so scipy's warning is noise.
        warnings.simplefilter("ignore")
        value = float(method(pred, gold)[0])
    return 0.0 if math.isnan(value) else value
