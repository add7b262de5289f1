"""Metrics of generated text: ROUGE-1/2/L (rouge-score, Google's reimplementation of
ROUGE-1.5.5), corpus BLEU and chrF (sacrebleu, the reference implementation for reporting), and
exact match. Both libraries are in the ``generation`` extra and imported on first use.

ROUGE F-measures and exact match are in [0, 1] like the other tasks' metrics; BLEU and chrF keep
sacrebleu's 0-100 scale, the scale papers report.
"""

from __future__ import annotations

from typing import Any

from polytask.extras import require

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _libraries() -> tuple[Any, Any]:
    sacrebleu = require("generation", "sacrebleu", "rouge_score", feature="seq2seq metrics")
    from rouge_score import rouge_scorer

    return rouge_scorer, sacrebleu


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus-level scores of ``predictions`` against one reference each."""
    rouge_scorer, sacrebleu = _libraries()
    if not references:
        return {**{name: 0.0 for name in ROUGE_TYPES}, "bleu": 0.0, "chrf": 0.0, "exact_match": 0.0}
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    n = len(references)
    return {
        **{name: total / n for name, total in totals.items()},
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
        "exact_match": sum(p == r for p, r in zip(predictions, references)) / n,
    }
