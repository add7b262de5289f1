"""Per-label results that report.html draws: a confusion matrix for classification and
precision/recall/F1 rows per class, per entity type (seqeval) and per multilabel label."""

from __future__ import annotations

import json
import warnings

import pytest

from polytask.config import TaskConfig
from polytask.tasks.base import build_task


def task(kind: str):
    return build_task(TaskConfig(name="t", type=kind, dataset="d", label="t"))


def test_confusion_matrix_counts_gold_rows_and_keeps_unseen_gold_labels() -> None:
    clf = task("classification")
    clf.fit(["a", "b", "c"])
    golds = ["a", "a", "b", "c", "new"]
    predictions = ["a", "b", "b", "a", "c"]
    confusion = clf.metrics(predictions, golds)["confusion"]
    assert confusion["labels"] == ["a", "b", "c", "new"]  # a dev label never trained on is a row
    assert confusion["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]
    json.dumps(confusion)  # plain ints: results.json keeps them as numbers


def test_multilabel_rows_per_label() -> None:
    ml = task("multilabel")
    ml.fit([["x", "y"], ["z"]])
    rows = ml.metrics([["x"], ["x", "y"], []], [["x"], ["y"], ["z"]])["report"]
    assert rows["x"] == {"precision": 0.5, "recall": 1.0, "f1-score": pytest.approx(2 / 3), "support": 1.0}
    assert rows["y"] == {"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 1.0}
    assert rows["z"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1.0}


def test_token_rows_per_entity_type_and_none_without_entities() -> None:
    tagger = task("token_classification")
    tagger.fit([["B-PER", "I-PER", "O", "B-LOC"]])
    golds = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "O"]]
    rows = tagger.metrics(predictions, golds)["report"]
    assert set(rows) == {"PER", "LOC"}
    assert rows["PER"]["f1-score"] == 1.0 and rows["LOC"]["recall"] == 0.5 and rows["LOC"]["support"] == 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # seqeval's report of an entity-free set warns
        assert tagger.metrics([["O", "O"]], [["O", "O"]])["report"] == {}
