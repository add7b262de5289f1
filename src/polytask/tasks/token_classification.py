"""Token classification (BIO tagging): word-level labels on each word's first sub-token.

The other sub-tokens of a word carry no label (-100), as in the BERT NER recipe. With
``crf: true`` a linear-chain CRF (pytorch-crf) runs over the first sub-tokens only, trained with
its negative log-likelihood and decoded with Viterbi.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from torch import nn
from torch.nn import functional as F
from torchcrf import CRF

from polytask.tasks.base import TASK_TYPES, first_subtoken_positions, label_text
from polytask.tasks.classification import LabelVocabulary, label_rows, linear_head


class TaggingHead(nn.Module):
    def __init__(self, hidden_size: int, outputs: int, dropout: float, crf: bool) -> None:
        super().__init__()
        self.emissions = linear_head(hidden_size, outputs, dropout)
        self.crf = CRF(outputs, batch_first=True) if crf else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.emissions(features)


def word_level(emissions: torch.Tensor, first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather the emissions at first sub-tokens into [B, W, C] with a [B, W] mask.

    ``first`` marks first sub-tokens ([B, T] bool); their order is kept.
    """
    counts = first.sum(1)
    width = max(int(counts.max()), 1)
    order = torch.sort((~first).to(torch.int8), dim=1, stable=True).indices[:, :width]
    gathered = emissions.gather(1, order.unsqueeze(-1).expand(-1, -1, emissions.size(-1)))
    mask = torch.arange(width, device=emissions.device).unsqueeze(0) < counts.unsqueeze(1)
    return gathered, mask


@TASK_TYPES.register("token_classification")
class TokenClassification(LabelVocabulary):
    level = "token"
    primary_metric = "f1"

    def parse(self, raw: Any, words: list[str] | None) -> tuple[Any, str | None]:
        if raw is None:
            return None, None
        if isinstance(raw, str):
            tags = raw.split()
        elif isinstance(raw, (list, tuple)):
            named = [label_text(tag) for tag in raw]
            if problem := next((p for _, p in named if p), None):
                return None, f"tags: {problem}"
            tags = [tag for tag, _ in named]
        else:
            return None, "tags must be a list or a space-separated string"
        if words is None:
            return None, "token classification needs word inputs (set tokens: on the dataset)"
        if len(tags) != len(words):
            return None, f"{len(words)} words but {len(tags)} tags; each word needs exactly one tag"
        for tag in tags:
            if problem := self.check_known(tag):
                return None, problem
        return tags, None

    def encode(self, value: Any, word_ids: list[int | None]) -> Any:
        if value is None:
            return None
        target = [-100] * len(word_ids)
        for position, word in first_subtoken_positions(word_ids):
            target[position] = self.index.get(value[word], -100)
        return target

    def collate(self, targets: list[Any], seq_len: int) -> torch.Tensor:
        rows = [[-100] * seq_len if t is None else t + [-100] * (seq_len - len(t)) for t in targets]
        return torch.tensor(rows, dtype=torch.long)

    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        return TaggingHead(hidden_size, self.num_outputs, dropout, self.config.crf)

    def loss(self, logits, target, present, attention_mask, head: TaggingHead | None = None):
        if head is None or head.crf is None:
            return F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=-100)
        first = target != -100
        keep = first.any(1)
        emissions, mask = word_level(logits[keep].float(), first[keep])
        tags, _ = word_level(target[keep].unsqueeze(-1), first[keep])
        tags = tags.squeeze(-1).clamp(min=0)
        return -head.crf(emissions, tags, mask=mask, reduction="token_mean")

    def _best_paths(self, logits, word_ids, head: TaggingHead | None) -> list[list[int]]:
        first = torch.zeros(logits.shape[:2], dtype=torch.bool, device=logits.device)
        for row, ids in enumerate(word_ids):
            for position, _ in first_subtoken_positions(ids[: logits.size(1)]):
                first[row, position] = True
        emissions, mask = word_level(logits.float(), first)
        if head is not None and head.crf is not None:
            # An input whose words all vanish in tokenization (e.g. only control characters)
            # has no position to tag; the CRF needs at least one, so such rows get no path.
            has_words = mask[:, 0]
            paths = iter(head.crf.decode(emissions[has_words], mask=mask[has_words])
                         if bool(has_words.any()) else [])
            return [next(paths) if bool(row) else [] for row in has_words]
        best = emissions.argmax(-1)
        return [best[row, : int(mask[row].sum())].tolist() for row in range(best.size(0))]

    def decode(self, logits, word_ids, attention_mask, head: TaggingHead | None = None) -> list[Any]:
        paths = self._best_paths(logits, word_ids, head)
        predictions = []
        for path, ids in zip(paths, word_ids):
            n_words = 1 + max((w for w in ids if w is not None), default=-1)
            tags = [self.labels[i] for i in path]
            # Words cut off by max_length get "O": the prediction keeps one tag per word.
            predictions.append(tags + ["O"] * (n_words - len(tags)))
        return predictions

    def complete(self, prediction: Any, n_words: int) -> Any:
        # Words beyond max_length were never seen by the model: "O" (outside any entity).
        if isinstance(prediction, dict):
            return {**prediction, "tags": self.complete(prediction["tags"], n_words)}
        return prediction + ["O"] * (n_words - len(prediction))

    def explain(self, logits, word_ids, attention_mask, head: TaggingHead | None = None):
        out = []
        for tags in self.decode(logits, word_ids, attention_mask, head):
            entities = [{"type": kind, "start": start, "end": end + 1}
                        for kind, start, end in get_entities(tags)]
            out.append({"tags": tags, "entities": entities})
        return out

    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        pairs = [(p, g) for p, g in zip(predictions, golds)]
        correct = sum(pt == gt for p, g in pairs for pt, gt in zip(p, g))
        total = sum(len(g) for _, g in pairs)
        return {
            "f1": float(f1_score(golds, predictions, zero_division=0)),
            "precision": float(precision_score(golds, predictions, zero_division=0)),
            "recall": float(recall_score(golds, predictions, zero_division=0)),
            "token_accuracy": correct / total if total else 0.0,
            # per entity type (seqeval, entity level): what report.html tabulates
            "report": label_rows(classification_report(golds, predictions, zero_division=0, output_dict=True))
            if any(get_entities(golds) + get_entities(predictions)) else {},  # none: seqeval warns
        }
