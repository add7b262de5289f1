"""One micro-batch of requests -> one ``predict_records`` call -> each request's answer."""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from polytask.data.records import Record, split_words
from polytask.inference import predict_records
from polytask.models.predictor import Predictor
from polytask.serving.batcher import Job, RequestFailed
from polytask.serving.inputs import tokenless


def truncated_flags(tokenizer: PreTrainedTokenizerBase, records: list[Record], max_length: int) -> list[bool]:
    """Whether each record has more tokens (special tokens included) than ``max_length``.

    Tokenized the way ``build_features`` did for this batch (word-split when any record has
    words, which ``predict_records`` sets for token tasks), but without truncation.
    """
    if hasattr(tokenizer, "encode_records"):  # tabular rows: one id per column, nothing cut off
        return [False] * len(records)
    if any(r.words is not None for r in records):
        words = [r.words if r.words is not None else split_words(r.input_text()) for r in records]
        encoded = tokenizer(words, is_split_into_words=True, truncation=False, verbose=False)
    else:
        texts, pairs = [r.input_text() for r in records], [r.text_pair for r in records]
        encoded = tokenizer(texts, pairs if any(p is not None for p in pairs) else None,
                            truncation=False, verbose=False)
    return [len(ids) > max_length for ids in encoded["input_ids"]]


def run_jobs(model: Predictor, jobs: list[Job], batch_size: int = 64) -> list[dict[str, Any] | RequestFailed]:
    """Every task any job asked for, from one encoder pass per batch of the merged inputs; a
    job with an input the tokenizer reads as nothing gets its own 422 and stays out of the batch.

    Heads are tiny next to the encoder, so computing the union of requested tasks for every
    input costs little and keeps the batch whole.
    """
    answers: list[dict[str, Any] | RequestFailed | None] = [None] * len(jobs)
    for i, job in enumerate(jobs):
        if problems := tokenless(model.tokenizer, job.records):
            answers[i] = RequestFailed(422, "; ".join(problems.values()))
    readable = [i for i, answer in enumerate(answers) if answer is None]
    for i, result in zip(readable, predict_jobs(model, [jobs[i] for i in readable], batch_size)):
        answers[i] = result
    return answers


def predict_jobs(model: Predictor, jobs: list[Job], batch_size: int) -> list[dict[str, Any]]:
    if not jobs:
        return []
    wanted = {name for job in jobs for name in job.tasks}
    names = [name for name in model.tasks if name in wanted]
    records = [record for job in jobs for record in job.records]
    predictions: list[Any] = [None] * len(records)
    flags: list[bool] = [False] * len(records)
    # Texts with and without a text_pair go to the tokenizer separately: one call cannot mix
    # them (a ValueError that failed every request of such a batch, found by fuzzing).
    for rows in ([i for i, r in enumerate(records) if r.text_pair is None],
                 [i for i, r in enumerate(records) if r.text_pair is not None]):
        if not rows:
            continue
        part = [records[i] for i in rows]
        for i, prediction, flag in zip(rows, predict_records(model, part, names, batch_size),
                                       truncated_flags(model.tokenizer, part, model.config.max_length)):
            predictions[i], flags[i] = prediction, flag
    results, start = [], 0
    for job in jobs:
        rows = range(start, start + len(job.records))
        results.append({"predictions": [{t: predictions[i][t] for t in job.tasks} for i in rows],
                        "truncated": [flags[i] for i in rows]})
        start += len(job.records)
    return results
