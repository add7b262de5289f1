"""Single-label sequence classification (text or text pair): cross-entropy on a linear head."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score, roc_auc_score
from torch import nn
from torch.nn import functional as F

from polytask.tasks.base import TASK_TYPES, Task, label_text


def linear_head(hidden_size: int, outputs: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, outputs))


class LabelVocabulary(Task):
    """Shared label handling of tasks whose values are strings from a finite set."""

    def fit(self, train_values: list[Any]) -> None:
        if not self.labels:
            self.labels = sorted({label for value in train_values if value is not None
                                  for label in ([value] if isinstance(value, str) else value)})
        self.index = {label: i for i, label in enumerate(self.labels)}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.index = {label: i for i, label in enumerate(self.labels)}

    def check_known(self, label: str) -> str | None:
        declared = self.config.labels
        if declared is not None and label not in declared:
            return f"unknown label {label!r}; declared labels: {', '.join(declared[:20])}"
        return None


@TASK_TYPES.register("classification")
class Classification(LabelVocabulary):
    primary_metric = "accuracy"

    def parse(self, raw: Any, words: list[str] | None) -> tuple[Any, str | None]:
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            return None, None
        label, problem = label_text(raw)
        problem = problem or self.check_known(label)
        return (None, problem) if problem else (label, None)

    def encode(self, value: Any, word_ids: list[int | None]) -> Any:
        # A training label outside the vocabulary can only come from a declared-label mismatch,
        # which validation reports; -100 keeps it out of the loss rather than crash.
        return None if value is None else self.index.get(value, -100)

    def collate(self, targets: list[Any], seq_len: int) -> torch.Tensor:
        return torch.tensor([-100 if t is None else t for t in targets], dtype=torch.long)

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return linear_head(hidden_size, self.num_outputs, dropout)

    def loss(self, logits, target, present, attention_mask, head=None) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, ignore_index=-100)

    def decode(self, logits, word_ids, attention_mask, head=None) -> list[Any]:
        return [self.labels[i] for i in logits.argmax(-1).tolist()]

    def explain(self, logits, word_ids, attention_mask, head=None) -> list[dict[str, Any]]:
        probs = logits.float().softmax(-1)
        best = probs.argmax(-1).tolist()
        return [{"label": self.labels[i], "score": round(float(p[i]), 6),
                 "scores": {label: round(float(s), 6) for label, s in zip(self.labels, p)}}
                for i, p in zip(best, probs)]

    def scores(self, logits: torch.Tensor) -> np.ndarray:
        return logits.float().softmax(-1).cpu().numpy()

    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "accuracy": float(accuracy_score(golds, predictions)),
            "macro_f1": float(f1_score(golds, predictions, average="macro", zero_division=0)),
            "report": classification_report(golds, predictions, zero_division=0, output_dict=True),
            "confusion": confusion(golds, predictions, self.labels),
        }
        if scores is not None and len(self.labels) == 2 and len(set(golds)) == 2:
            positive = [g == self.labels[1] for g in golds]
            result["auc"] = float(roc_auc_score(positive, scores[:, 1]))
        return result


def confusion(golds: list[Any], predictions: list[Any], labels: list[str]) -> dict[str, Any]:
    """Rows = gold, columns = predicted, over the training labels plus any gold label unseen in
    training (report.html draws it)."""
    names = list(labels) + sorted({str(g) for g in golds} - set(labels))
    matrix = confusion_matrix(golds, predictions, labels=names) if golds else np.zeros((len(names),) * 2)
    return {"labels": names, "matrix": [[int(v) for v in row] for row in matrix]}


def label_rows(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The per-label rows of a classification report (sklearn's or seqeval's), as plain floats."""
    return {label: {k: float(v) for k, v in row.items()} for label, row in report.items()
            if isinstance(row, dict) and not label.endswith(" avg")}
