"""Whether one item's predictions satisfy a rule's conditions.

A prediction is what ``polytask predict`` writes for a task (classification
``{"label", "score", "scores"}``, multilabel ``{"labels", "scores"}``, regression
``{"prediction"}``, token classification ``{"tags", "entities"}``) or, for hand-written
streams, the bare value: a label string, a list of labels, or a number.
"""

from __future__ import annotations

import math
from typing import Any

from polytask.monitoring.rules import Condition


class ConditionError(ValueError):
    """The prediction does not have what the condition tests (reported with file:line)."""


def _labels(prediction: Any) -> tuple[set[str] | None, str | None]:
    """(labels the prediction names, the single predicted label if there is one)."""
    if isinstance(prediction, str):
        return {prediction}, prediction
    if isinstance(prediction, list):
        return {str(v) for v in prediction}, None
    if isinstance(prediction, dict):
        if isinstance(prediction.get("label"), str):
            return {prediction["label"]}, prediction["label"]
        if isinstance(prediction.get("labels"), list):
            return {str(v) for v in prediction["labels"]}, None
        if isinstance(prediction.get("entities"), list):
            return {str(e.get("type")) for e in prediction["entities"] if isinstance(e, dict)}, None
    return None, None


def _number(prediction: Any) -> float | None:
    value = prediction.get("prediction") if isinstance(prediction, dict) else prediction
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def holds(condition: Condition, predictions: dict[str, Any]) -> bool:
    """True if the item's prediction for ``condition.task`` passes every test it sets."""
    if condition.task not in predictions:
        raise ConditionError(f"no prediction for task {condition.task!r} (has: {sorted(predictions)})")
    prediction = predictions[condition.task]
    if condition.equals is not None and not _equals(prediction, condition.equals):
        return False
    if condition.min_score is not None:
        label = condition.equals if condition.equals is not None else _labels(prediction)[1]
        scores = prediction.get("scores") if isinstance(prediction, dict) else None
        if not isinstance(scores, dict) or label is None or str(label) not in scores:
            raise ConditionError(f"task {condition.task!r}: min_score needs a \"scores\" object with "
                                 f"the score of {label!r} (what `polytask predict` writes)")
        if float(scores[str(label)]) < condition.min_score:
            return False
    if condition.min is not None or condition.max is not None:
        value = _number(prediction)
        if value is None:
            raise ConditionError(f"task {condition.task!r}: min/max need a number (or "
                                 '{"prediction": number}), got ' + repr(prediction)[:80])
        if condition.min is not None and value < condition.min:
            return False
        if condition.max is not None and value > condition.max:
            return False
    return True


def _equals(prediction: Any, expected: str | float) -> bool:
    labels, _ = _labels(prediction)
    if labels is not None:
        return str(expected) in labels
    value = _number(prediction)
    if value is None:
        raise ConditionError(f"equals: cannot read a label or a value from {repr(prediction)[:80]}")
    return isinstance(expected, (int, float)) and value == float(expected)
