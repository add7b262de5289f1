"""Token classification: word-level tags on each word's first sub-token.

The other sub-tokens of a word carry no label (-100), as in the BERT NER recipe. With
``crf: true`` a linear-chain CRF (pytorch-crf) runs over the first sub-tokens only, trained with
its negative log-likelihood and decoded with Viterbi. Viterbi never takes a transition the
tagging scheme forbids (as AllenNLP's constrained decoding: training stays unconstrained, so a
sentence cut by max_length or a word lost in tokenization cannot make the gold path
impossible). ``scheme`` (tag_schemes.py) decides how tags are checked, read as entities and
scored.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from sklearn.metrics import f1_score
from torch import nn
from torch.nn import functional as F
from torchcrf import CRF

from polytask.config import TaskConfig
from polytask.tasks import tag_schemes
from polytask.tasks.base import TASK_TYPES, first_subtoken_positions, label_text
from polytask.tasks.classification import LabelVocabulary, label_rows, linear_head

log = logging.getLogger(__name__)
#: Added to the score of a transition the scheme forbids, so that Viterbi never takes it.
FORBIDDEN = -1e4


class TaggingHead(nn.Module):
    def __init__(self, hidden_size: int, outputs: int, dropout: float, crf: bool) -> None:
        super().__init__()
        self.emissions = linear_head(hidden_size, outputs, dropout)
        self.crf = CRF(outputs, batch_first=True) if crf else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.emissions(features)


def constrained(crf: CRF, scheme: str, labels: list[str]) -> CRF:
    """A copy of ``crf`` whose transitions forbidden by ``scheme`` score FORBIDDEN lower."""
    n = len(labels)
    ok = torch.tensor([[tag_schemes.allowed(scheme, a, b) for b in [*labels, None]]
                       for a in [None, *labels]])  # row 0: the start; column n: the end
    bias = torch.where(ok, 0.0, FORBIDDEN).to(crf.transitions)
    out = CRF(n, batch_first=True).to(crf.transitions.device)
    out.load_state_dict({"start_transitions": crf.start_transitions.detach() + bias[0, :n],
                         "transitions": crf.transitions.detach() + bias[1:, :n],
                         "end_transitions": crf.end_transitions.detach() + bias[1:, n]})
    return out


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


def _fits(sequences: list[list[str]]) -> str:
    return " or ".join(f"scheme: {s}" for s in tag_schemes.fitting_schemes(sequences)[:2])


@TASK_TYPES.register("token_classification")
class TokenClassification(LabelVocabulary):
    level = "token"
    primary_metric = "f1"

    def __init__(self, config: TaskConfig, labels: list[str] | None = None) -> None:
        super().__init__(config, labels)
        self.scheme = config.scheme or tag_schemes.DEFAULT
        self.primary_metric = self.primary_metric_for(config)  # type: ignore[misc]
        # Whether Viterbi obeys the scheme: a scheme that was set is enforced on every gold
        # sequence (parse); the default only when the train tags fit it (fit), so a model
        # trained on ill-formed bio keeps predicting what its data has.
        self.constrain = config.scheme is not None

    @classmethod
    def primary_metric_for(cls, config: TaskConfig) -> str:
        # Tags without spans (POS) have no entity F1: accuracy over tags, as POS is reported.
        return "token_accuracy" if config.scheme == "none" else cls.primary_metric

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
        problem = self.check_scheme(tags)
        return (None, problem) if problem else (tags, None)

    def check_scheme(self, tags: list[str]) -> str | None:
        """A problem when ``scheme`` was set and ``tags`` do not fit it, naming what fits."""
        scheme = self.config.scheme
        if scheme is None:
            return None
        if foreign := tag_schemes.foreign_tags(scheme, tags):
            return (f"tag {foreign[0]!r} is not a tag of scheme {scheme} (prefixes "
                    f"{', '.join(sorted(tag_schemes.ROLES[scheme].letters))} or O); "
                    f"these tags fit {_fits([tags])}")
        at = tag_schemes.ill_formed_at(scheme, tags)
        if at is not None:
            where = f"tag {at + 1} ({tags[at]!r})" if at < len(tags) else "the last tag"
            return (f"{where} breaks scheme {scheme} after {(['start', *tags])[at]!r}; fix the "
                    f"tags, or set the scheme they follow ({_fits([tags])})")
        return None

    def fit(self, train_values: list[Any]) -> None:
        super().fit(train_values)
        if self.config.scheme is not None:
            return
        sequences = [v for v in train_values if v is not None]
        self.constrain = not tag_schemes.foreign_tags(self.scheme, set(self.labels)) and all(
            tag_schemes.ill_formed_at(self.scheme, tags) is None for tags in sequences)
        if not self.constrain:
            log.warning("task %s: its train tags are not well-formed %s (the default scheme); "
                        "they fit %s. Set scheme: on the task (docs/token_tasks.md), else "
                        "entities are read and scored as %s", self.name, self.scheme,
                        _fits(sequences), self.scheme)

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
            crf = constrained(head.crf, self.scheme, self.labels) if self.constrain else head.crf
            paths = iter(crf.decode(emissions[has_words], mask=mask[has_words])
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

    def state(self) -> dict[str, Any]:
        return {**super().state(), "constrained": self.constrain}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        # Models saved before schemes existed decoded without constraints: they still do.
        self.constrain = bool(state.get("constrained", False))

    def explain(self, logits, word_ids, attention_mask, head: TaggingHead | None = None):
        """Tags, and (with a scheme) entities with their word span and ``score``: the mean over
        the entity's words of the probability of the chosen tag at the word's first sub-token
        (softmax of the emissions; with a CRF, its Viterbi path's tags), as HF's NER pipeline."""
        paths = self._best_paths(logits, word_ids, head)
        tag_lists = self.decode(logits, word_ids, attention_mask, head)
        if self.scheme == "none":
            return [{"tags": tags} for tags in tag_lists]
        out = []
        for probs, path, tags in zip(self._word_probabilities(logits, word_ids), paths, tag_lists):
            chosen = [float(probs[w, tag]) for w, tag in enumerate(path)]
            found = tag_schemes.entities(self.scheme, tags)
            for entity in found:
                kept = chosen[entity["start"]:entity["end"]]  # words past max_length: none
                entity["score"] = round(sum(kept) / len(kept), 6) if kept else 0.0
            out.append({"tags": tags, "entities": found})
        return out

    def _word_probabilities(self, logits, word_ids) -> list[torch.Tensor]:
        """Per example, [words, labels] softmax probabilities at each word's first sub-token."""
        probs = logits.float().softmax(-1)
        rows = []
        for row, ids in enumerate(word_ids):
            positions = [p for p, _ in first_subtoken_positions(ids[: logits.size(1)])]
            rows.append(probs[row, positions].cpu())
        return rows

    @staticmethod
    def locate(prediction: Any, words: list[str], text: str | None) -> Any:
        """``prediction``'s entities with, as HF's NER pipeline gives them, ``word`` and character
        ``start``/``end`` in ``text`` (the input; inputs given as words: the words joined by single
        spaces), the word span kept as ``word_start``/``word_end`` (end exclusive)."""
        if not isinstance(prediction, dict) or not prediction.get("entities"):
            return prediction
        text, spans = word_spans(words, text)
        located = []
        for entity in prediction["entities"]:
            first, last = entity["start"], entity["end"]
            start, end = spans[first][0], spans[min(last, len(spans)) - 1][1]
            located.append({"type": entity["type"], "word": text[start:end], "start": start, "end": end,
                            "score": entity.get("score"), "word_start": first, "word_end": last})
        return {**prediction, "entities": located}

    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        pairs = [(pt, gt) for p, g in zip(predictions, golds) for pt, gt in zip(p, g)]
        total = sum(len(g) for g in golds)
        result = {"token_accuracy": sum(p == g for p, g in pairs) / total if total else 0.0}
        if self.scheme != "none":
            # per entity type (seqeval, entity level): what report.html tabulates
            report = label_rows(tag_schemes.span_report(self.scheme, golds, predictions))
            return {**tag_schemes.span_metrics(self.scheme, golds, predictions), **result, "report": report}
        # Tags are classes of their own (POS): F1 over the tags of gold and predictions.
        flat_pred, flat_gold = ([p for p, _ in pairs], [g for _, g in pairs])
        return {**result, **{f"{avg}_f1": float(f1_score(flat_gold, flat_pred, average=avg,
                                                          zero_division=0))
                             for avg in ("macro", "micro")}}


def word_spans(words: list[str], text: str | None) -> tuple[str, list[tuple[int, int]]]:
    """The text and each word's [start, end) character span in it, found left to right (so a
    repeated word gets its own occurrence); without a text, or if a word is not found in it
    in order, the words joined by single spaces."""
    for source in ([text] if text else []) + [" ".join(words)]:
        spans, at = [], 0
        for word in words:
            start = source.find(word, at)
            if start < 0:
                break
            spans.append((start, start + len(word)))
            at = start + len(word)
        else:
            return source, spans
    raise AssertionError("unreachable: the joined words always contain every word")
