"""Token-task entities carry, as HF's NER pipeline, ``word``, character ``start``/``end`` in the
input text and a ``score``: right on repeated words, punctuation and CJK characters."""

from __future__ import annotations

import pytest
import torch

from polytask.config import TaskConfig
from polytask.data.records import split_words
from polytask.tasks.token_classification import TokenClassification, word_spans


def tagger(train: list[list[str]]) -> TokenClassification:
    task = TokenClassification(TaskConfig(name="t", type="token_classification", dataset="d",
                                          label="tags", scheme="bio"))
    task.fit(train)
    return task


def predict(task: TokenClassification, text: str, tags: list[str], probability: float = 0.9):
    """explain + locate for ``text`` whose words get ``tags`` (one sub-token per word)."""
    words = split_words(text)
    n = len(task.labels)
    logits = torch.full((1, len(words) + 2, n), 0.0)
    high = torch.log(torch.tensor(probability * (n - 1) / (1 - probability)))
    for position, tag in enumerate(tags, start=1):
        logits[0, position, task.labels.index(tag)] = high
    [explained] = task.explain(logits, [[None, *range(len(words)), None]], torch.ones(1, len(words) + 2))
    return task.locate(explained, words, text)["entities"]


def test_repeated_words_each_get_their_own_offsets():
    task = tagger([["B-c", "I-c", "O"]])
    text = "red  cat, red cat."
    entities = predict(task, text, ["O", "O", "B-c", "I-c"])  # the second "red cat."
    assert [(e["word"], e["start"], e["end"]) for e in entities] == [("red cat.", 10, 18)]
    assert text[10:18] == "red cat."
    assert entities[0]["word_start"] == 2 and entities[0]["word_end"] == 4
    assert entities[0]["score"] == pytest.approx(0.9, abs=1e-5)


def test_punctuation_and_cjk_offsets():
    task = tagger([["B-LOC", "I-LOC", "B-ORG", "O"]])
    text = "今天深圳的Apple，股价大跌了"  # words: 今 天 深 圳 的 Apple ， 股 价 大 跌 了
    words = split_words(text)
    tags = ["O", "O", "B-LOC", "I-LOC", "O", "B-ORG"] + ["O"] * (len(words) - 6)
    entities = predict(task, text, tags, probability=0.8)
    assert [(e["type"], e["word"], e["start"], e["end"]) for e in entities] == \
        [("LOC", "深圳", 2, 4), ("ORG", "Apple", 5, 10)]
    assert all(text[e["start"]:e["end"]] == e["word"] for e in entities)
    assert [e["score"] for e in entities] == pytest.approx([0.8, 0.8], abs=1e-5)


def test_inputs_given_as_words_are_located_in_the_words_joined_by_spaces():
    assert word_spans(["a", "b", "a"], None) == ("a b a", [(0, 1), (2, 3), (4, 5)])
    assert word_spans(["x", "y"], "y x") == ("x y", [(0, 1), (2, 3)])  # not in order in the text
