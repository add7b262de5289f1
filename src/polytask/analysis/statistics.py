"""Model-free relatedness signals, read off each task's training inputs and labels.

- ``vocab_jaccard``   Jaccard index of the two tasks' sets of word types (lower-cased ``\\w+``).
- ``vocab_jsd``       Jensen-Shannon divergence (base 2, in [0, 1]) of their word distributions;
                      0 = the same distribution. A divergence, so *lower* means more related.
- ``input_overlap``   share of identical inputs: |A ∩ B| / min(|A|, |B|) over distinct input texts.
- ``label_nmi``       for tasks on shared inputs (identical input texts), the normalised mutual
                      information of their labels over those inputs; ``None`` below
                      ``MIN_SHARED`` shared inputs. Labels are summarised as one categorical
                      value per input: a token task by its sorted set of entity types
                      (``B-city I-city O`` -> ``city``), a multi-label task by its sorted label
                      set, a regression target by its quintile.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from polytask.config import RunConfig
from polytask.data.records import Record
from polytask.tasks.base import build_task

WORD = re.compile(r"\w+")
MIN_SHARED = 10


def task_examples(config: RunConfig, records: dict[str, dict[str, list[Record]]]) -> dict[str, list[tuple[str, Any]]]:
    """(input text, clean label value) of each task's labelled training examples."""
    out = {}
    for task_config in config.tasks:
        task = build_task(task_config)
        rows = []
        for record in records[task_config.dataset]["train"]:
            value, _ = task.parse(record.fields.get(task_config.label), record.words)
            if value is not None:
                text = record.input_text() + ("" if record.text_pair is None else " ||| " + record.text_pair)
                rows.append((text, value))
        out[task_config.name] = rows
    return out


def categorical(values: list[Any]) -> list[str]:
    """One categorical value per example (see the module docstring)."""
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        edges = np.quantile(np.asarray(values, dtype=float), [0.2, 0.4, 0.6, 0.8])
        return [str(int(np.searchsorted(edges, v, side="right"))) for v in values]
    out = []
    for value in values:
        if isinstance(value, (list, tuple)):
            tags = [str(v) for v in value]
            if any(t[:2] in ("B-", "I-") or t == "O" for t in tags):
                tags = [t[2:] for t in tags if t[:2] in ("B-", "I-")]
            out.append("|".join(sorted(set(tags))))
        else:
            out.append(str(value))
    return out


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def jensen_shannon(p: Counter, q: Counter) -> float:
    """JSD in bits between two word-count distributions (0 = identical, 1 = disjoint)."""
    total_p, total_q = sum(p.values()) or 1, sum(q.values()) or 1
    value = 0.0
    for word in set(p) | set(q):
        a, b = p[word] / total_p, q[word] / total_q
        m = (a + b) / 2
        value += 0.5 * (a * math.log2(a / m) if a else 0.0) + 0.5 * (b * math.log2(b / m) if b else 0.0)
    return min(max(value, 0.0), 1.0)


def label_nmi(a: list[tuple[str, Any]], b: list[tuple[str, Any]]) -> float | None:
    """NMI of two tasks' labels over the inputs both label (first label of a repeated input)."""
    labels_b: dict[str, Any] = {}
    for text, value in b:
        labels_b.setdefault(text, value)
    seen: set[str] = set()
    pairs = []
    for text, value in a:
        if text in labels_b and text not in seen:
            seen.add(text)
            pairs.append((value, labels_b[text]))
    if len(pairs) < MIN_SHARED:
        return None
    return float(normalized_mutual_info_score(categorical([p[0] for p in pairs]),
                                              categorical([p[1] for p in pairs])))


def statistical_signals(examples: dict[str, list[tuple[str, Any]]]) -> dict[str, np.ndarray]:
    """Every model-free signal as a task x task matrix (NaN where undefined)."""
    names = list(examples)
    counts = {n: Counter(w for text, _ in rows for w in WORD.findall(text.lower())) for n, rows in examples.items()}
    inputs = {n: {text for text, _ in rows} for n, rows in examples.items()}
    n = len(names)
    signals = {key: np.full((n, n), np.nan) for key in ("vocab_jaccard", "vocab_jsd", "input_overlap", "label_nmi")}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            signals["vocab_jaccard"][i, j] = jaccard(set(counts[a]), set(counts[b]))
            signals["vocab_jsd"][i, j] = jensen_shannon(counts[a], counts[b])
            smaller = min(len(inputs[a]), len(inputs[b]))
            signals["input_overlap"][i, j] = len(inputs[a] & inputs[b]) / smaller if smaller else 0.0
            value = label_nmi(examples[a], examples[b])
            signals["label_nmi"][i, j] = np.nan if value is None else value
    return signals
