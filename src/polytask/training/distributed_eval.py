"""Evaluation split over the ranks of a distributed run, with exact metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from polytask.evaluation.evaluate import evaluate_groups, run_tasks, score_tasks
from polytask.distributed import Distributed


def evaluate_sharded(ddp: Distributed, model, groups: dict[str, tuple[list, list]], batch_size: int,
                     precision: str = "fp32", with_loss: bool = False) -> dict[str, Any]:
    """``evaluate_groups`` with each rank predicting every world_size-th example; predictions are
    gathered and every rank scores the full set, so metrics are exact (not averages of shard
    metrics, which F1 or exact match are not) and identical on all ranks."""
    if not ddp.active:
        return evaluate_groups(model, groups, batch_size, precision, with_loss)
    metrics: dict[str, Any] = {}
    for group, (tasks, features) in groups.items():
        if not features:
            continue
        mine = features[ddp.rank::ddp.world_size]
        local = run_tasks(model, mine, tasks, batch_size, precision, with_loss=with_loss) if mine else None
        merged = {t.name: {"predictions": [None] * len(features), "scores": None, "loss": [0.0, 0]} for t in tasks}
        for rank, part in enumerate(ddp.gather_objects(local)):
            if part is None:
                continue
            rows = range(rank, len(features), ddp.world_size)
            for name, result in part.items():
                target = merged[name]
                target["loss"] = [a + b for a, b in zip(target["loss"], result["loss"])]  # sums of shards
                for row, prediction in zip(rows, result["predictions"]):
                    target["predictions"][row] = prediction
                if result["scores"] is not None:
                    if target["scores"] is None:
                        shape = (len(features), *result["scores"].shape[1:])
                        target["scores"] = np.zeros(shape, dtype=result["scores"].dtype)
                    target["scores"][list(rows)] = result["scores"]
        metrics.update(score_tasks(tasks, features, merged, group))
    return metrics
