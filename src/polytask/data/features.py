"""Records -> tokenized features, done once before training (no re-tokenizing each epoch)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from polytask.data.records import Record
from polytask.data.records import split_words as words_of
from polytask.tasks.base import Task


@dataclass
class Feature:
    input_ids: list[int]
    token_type_ids: list[int] | None
    word_ids: list[int | None]
    n_words: int = 0  # words of the input, also those cut off by max_length
    golds: dict[str, Any] = field(default_factory=dict)    # task -> clean value (None = no label)
    targets: dict[str, Any] = field(default_factory=dict)  # task -> training target

    def __len__(self) -> int:
        return len(self.input_ids)


def tokenize(tokenizer: PreTrainedTokenizerBase, records: list[Record], max_length: int,
             split_words: bool, chunk: int = 2048) -> list[tuple[list[int], list[int] | None, list]]:
    """Token ids, type ids and word ids of each record, in fast batched tokenizer calls.

    With ``split_words`` the words are tokenized one by one (is_split_into_words) so token
    tasks can find each word's first sub-token; sentence tasks read the same ids.
    """
    if hasattr(tokenizer, "encode_records"):  # a tabular FieldVocabulary: ids per feature column
        return tokenizer.encode_records(records)
    out = []
    for start in range(0, len(records), chunk):
        part = records[start:start + chunk]
        if split_words:
            words = [r.words if r.words is not None else words_of(r.input_text()) for r in part]
            enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
        else:
            texts = [r.input_text() for r in part]
            pairs = [r.text_pair for r in part]
            enc = tokenizer(texts, pairs if any(p is not None for p in pairs) else None,
                            truncation=True, max_length=max_length)
        types = enc.get("token_type_ids")
        for i in range(len(part)):
            out.append((enc["input_ids"][i], types[i] if types is not None else None,
                        enc.word_ids(i) if split_words else []))
    return out


def build_features(records: list[Record], tasks: list[Task], tokenizer: PreTrainedTokenizerBase,
                   max_length: int, with_targets: bool) -> list[Feature]:
    """Features of one dataset split for the tasks that read it.

    Labels are parsed again here (validation already proved they parse) so that the clean
    values do not have to be carried from validation.
    """
    split_words = any(task.needs_words for task in tasks) or any(r.words is not None for r in records)
    features = []
    for record, (ids, types, word_ids) in zip(records, tokenize(tokenizer, records, max_length, split_words)):
        feature = Feature(ids, types, word_ids, len(record.words or words_of(record.input_text())))
        for task in tasks:
            value, _ = task.parse(record.fields.get(task.config.label), record.words)
            feature.golds[task.name] = value
            if with_targets:
                feature.targets[task.name] = task.encode(value, word_ids)
        features.append(feature)
    return features
