"""Evaluation of every task: predictions in length-sorted batches, metrics per task, and the
exact match over tasks that share inputs ("sentence accuracy": every task right at once)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polytask.data.batches import collate, to_device
from polytask.device import autocast
from polytask.data.features import Feature
from polytask.models.multitask import MultiTaskModel
from polytask.models.predictor import Predictor, predictor_device
from polytask.tasks.base import Task


@torch.no_grad()
def run_tasks(model: Predictor, features: list[Feature], tasks: list[Task], batch_size: int,
              precision: str = "fp32", explain: bool = False, with_loss: bool = False) -> dict[str, dict[str, Any]]:
    """Every task's predictions (and scores) for ``features``, from one encoder pass per batch.
    ``model`` is a MultiTaskModel or any other Predictor (e.g. the ONNX Runtime runner).
    ``with_loss`` (features with targets, a MultiTaskModel): also each task's loss on the same
    logits, as ``loss: [sum over labelled rows, rows]``."""
    device = predictor_device(model)
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]))
    out = {t.name: {"predictions": [None] * len(features), "scores": None, "loss": [0.0, 0]} for t in tasks}
    names = [t.name for t in tasks]
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = to_device(collate([features[i] for i in rows], tasks, model.tokenizer.pad_token_id,
                                  with_targets=with_loss), device)
        with autocast(device, precision):
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], names)
        for task in tasks:
            head = model.heads[task.name]
            decoder = task.explain if explain else task.decode
            values = decoder(logits[task.name], batch["word_ids"], batch["attention_mask"], head=head)
            scores = task.scores(logits[task.name])
            if scores is not None and out[task.name]["scores"] is None:
                out[task.name]["scores"] = np.zeros((len(features), *scores.shape[1:]), dtype=np.float32)
            for row, value, k in zip(rows, values, range(len(rows))):
                out[task.name]["predictions"][row] = task.complete(value, features[row].n_words)
                if scores is not None:
                    out[task.name]["scores"][row] = scores[k]
            if with_loss:
                add_loss(out[task.name]["loss"], task, logits[task.name], batch, head)
    model.train(was_training)
    return out


def add_loss(total: list, task: Task, logits: Any, batch: dict[str, Any], head: Any) -> None:
    """Add this batch's loss of ``task`` (its mean over labelled rows) times those rows."""
    present = batch["present"][task.name]
    labelled = int(present.sum())
    if labelled:
        loss = float(task.loss(logits, batch["targets"][task.name], present, batch["attention_mask"], head=head))
        if np.isfinite(loss):
            total[0] += loss * labelled
            total[1] += labelled


def score_tasks(tasks: list[Task], features: list[Feature], results: dict[str, dict[str, Any]],
                group: str) -> dict[str, Any]:
    """Metrics per task (keys ``task/metric``) and ``group/exact_match`` for 2+ tasks."""
    metrics: dict[str, Any] = {}
    for task in tasks:
        keep = [i for i, f in enumerate(features) if f.golds.get(task.name) is not None]
        if not keep:
            continue
        predictions = results[task.name]["predictions"]
        scores = results[task.name]["scores"]
        values = task.metrics([predictions[i] for i in keep], [features[i].golds[task.name] for i in keep],
                              None if scores is None else scores[keep])
        metrics.update({f"{task.name}/{k}": v for k, v in values.items()})
        loss, rows = results[task.name].get("loss") or (0.0, 0)
        if rows:
            metrics[f"{task.name}/loss"] = loss / rows
    if len(tasks) > 1:
        labelled = [i for i, f in enumerate(features) if all(f.golds.get(t.name) is not None for t in tasks)]
        if labelled:
            right = sum(all(t.same(results[t.name]["predictions"][i], features[i].golds[t.name])
                            for t in tasks) for i in labelled)
            metrics[f"{group}/exact_match"] = right / len(labelled)
    return metrics


def evaluate_groups(model: MultiTaskModel, groups: dict[str, tuple[list[Task], list[Feature]]],
                    batch_size: int, precision: str = "fp32", with_loss: bool = False) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for group, (tasks, features) in groups.items():
        if features:
            results = run_tasks(model, features, tasks, batch_size, precision, with_loss=with_loss)
            metrics.update(score_tasks(tasks, features, results, group))
    return metrics


def selection_score(metrics: dict[str, Any], tasks: list[Task], select_on: str) -> float | None:
    """The number early stopping and best-model selection maximise."""
    def primary(task: Task) -> float | None:
        value = metrics.get(f"{task.name}/{task.primary_metric}")
        return None if value is None else (value if task.higher_is_better else -value)

    if select_on == "mean":
        values = [v for t in tasks if (v := primary(t)) is not None]
        return float(np.mean(values)) if values else None
    by_name = {t.name: t for t in tasks}
    if select_on in by_name:
        return primary(by_name[select_on])
    value = metrics.get(select_on)
    return None if value is None else float(value)


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in metrics.items() if isinstance(v, (int, float))}
