"""Multi-label sequence classification: any subset of the labels may apply to one text.

Each label is an independent yes/no decision (binary relevance): a linear head gives one logit
per label, trained with binary cross-entropy, and a label is predicted when its sigmoid is at
least 0.5. An empty label set is a valid value ("no label applies"); only None is missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer
from torch import nn
from torch.nn import functional as F

from polytask.tasks.base import TASK_TYPES, label_text
from polytask.tasks.classification import LabelVocabulary, linear_head

THRESHOLD = 0.5


@TASK_TYPES.register("multilabel")
class MultiLabel(LabelVocabulary):
    primary_metric = "micro_f1"

    def parse(self, raw: Any, words: list[str] | None) -> tuple[Any, str | None]:
        """A list of labels (JSON) or one string split on ``label_separator``."""
        if raw is None:
            return None, None
        if isinstance(raw, (list, tuple)):
            named = [label_text(label) for label in raw]
        else:
            text, problem = label_text(raw)
            separator = self.config.label_separator
            named = [(text, problem)] if problem else [(part, None) for part in text.split(separator)]
        if problem := next((p for _, p in named if p), None):
            return None, problem
        parts = [part for part, _ in named]
        # Empty parts come from stray separators ("a|", "a||b"): not labels the user meant.
        labels = list(dict.fromkeys(part.strip() for part in parts if part.strip()))
        for label in labels:
            if problem := self.check_known(label):
                return None, problem
        return labels, None

    def encode(self, value: Any, word_ids: list[int | None]) -> Any:
        # Labels outside the vocabulary can only come from a declared-label mismatch, which
        # validation reports; dropping them keeps training going instead of crashing.
        return None if value is None else [self.index[label] for label in value if label in self.index]

    def collate(self, targets: list[Any], seq_len: int) -> torch.Tensor:
        # Rows of unlabelled examples stay zero; the loss drops them through ``present``.
        batch = torch.zeros(len(targets), self.num_outputs, dtype=torch.float)
        for row, target in enumerate(targets):
            if target:
                batch[row, target] = 1.0
        return batch

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return linear_head(hidden_size, self.num_outputs, dropout)

    def loss(self, logits, target, present, attention_mask, head=None) -> torch.Tensor:
        present = present.to(logits.device)
        if not bool(present.any()):
            # Zero that keeps the graph: a batch without labels for this task adds nothing.
            return logits.float().sum() * 0.0
        return F.binary_cross_entropy_with_logits(logits[present].float(), target[present].float())

    def decode(self, logits, word_ids, attention_mask, head=None) -> list[Any]:
        chosen = (logits.float().sigmoid() >= THRESHOLD).tolist()
        return [[label for label, on in zip(self.labels, row) if on] for row in chosen]

    def explain(self, logits, word_ids, attention_mask, head=None) -> list[dict[str, Any]]:
        probs = self.scores(logits)
        return [{"labels": [label for label, p in zip(self.labels, row) if p >= THRESHOLD],
                 "scores": {label: round(float(p), 6) for label, p in zip(self.labels, row)}}
                for row in probs]

    def scores(self, logits: torch.Tensor) -> np.ndarray:
        return logits.detach().float().sigmoid().cpu().numpy()

    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        """micro/macro F1 and ROC-AUC over the known labels; ``exact_match`` (subset accuracy)
        counts examples whose predicted set equals the gold set.

        Gold labels unseen in training have no column, so the binarized metrics ignore them;
        exact match compares whole sets, so such an example always counts as wrong there.
        """
        known = set(self.labels)
        binarizer = MultiLabelBinarizer(classes=self.labels)
        y_true = binarizer.fit_transform([[x for x in g if x in known] for g in golds])
        y_pred = binarizer.transform([[x for x in p if x in known] for p in predictions])
        result: dict[str, Any] = {
            **f1_scores(y_true.astype(bool), y_pred.astype(bool)),
            "exact_match": float(np.mean([set(p) == set(g) for p, g in zip(predictions, golds)]))
            if golds else 0.0,
            "report": label_report(self.labels, y_true.astype(bool), y_pred.astype(bool)),
        }
        if scores is not None and (auc := macro_auc(y_true, np.asarray(scores))) is not None:
            result["auc"] = auc
        return result


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Micro F1 (pooled counts) and macro F1 (mean over labels that occur in gold or predictions,
    as single-label macro F1 does, so a label absent from the evaluation set is not a zero).

    Counted directly: sklearn infers "binary" from a one-label matrix and scores it differently.
    """
    tp = (y_true & y_pred).sum(0)
    wrong = (y_true ^ y_pred).sum(0)  # false positives + false negatives, per label
    used = (y_true | y_pred).any(0)
    micro_denominator = 2 * tp.sum() + wrong.sum()
    return {
        "micro_f1": float(2 * tp.sum() / micro_denominator) if micro_denominator else 0.0,
        "macro_f1": float(np.mean(2 * tp[used] / (2 * tp[used] + wrong[used]))) if used.any() else 0.0,
    }


def label_report(labels: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label (the rows report.html tabulates)."""
    tp, predicted, gold = (y_true & y_pred).sum(0), y_pred.sum(0), y_true.sum(0)
    rows = {}
    for i, label in enumerate(labels):
        precision = tp[i] / predicted[i] if predicted[i] else 0.0
        recall = tp[i] / gold[i] if gold[i] else 0.0
        f1 = 2 * tp[i] / (predicted[i] + gold[i]) if predicted[i] + gold[i] else 0.0
        rows[label] = {"precision": float(precision), "recall": float(recall), "f1-score": float(f1),
                       "support": float(gold[i])}
    return rows


def macro_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Mean ROC-AUC over labels whose gold column has both classes; None if no label has."""
    both = [c for c in range(y_true.shape[1]) if 0 < y_true[:, c].sum() < y_true.shape[0]]
    if not both:
        return None
    return float(np.mean([roc_auc_score(y_true[:, c], scores[:, c]) for c in both]))
