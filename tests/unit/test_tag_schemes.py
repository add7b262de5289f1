"""Tagging schemes: each scores and decodes a hand-made example as the scheme reads it, a label
set that does not fit is reported, and the CRF's Viterbi never breaks the scheme."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from polytask.config import TaskConfig, parse_config
from polytask.data.validation import validate
from polytask.errors import DataValidationError
from polytask.benchmarking import task_info
from polytask.tasks.tag_schemes import SCHEME_NAMES, entities, ill_formed_at
from polytask.tasks.token_classification import TokenClassification


def tagger(scheme: str | None = None, crf: bool = False, train=None) -> TokenClassification:
    task = TokenClassification(TaskConfig(name="t", type="token_classification", dataset="d",
                                          label="tags", scheme=scheme, crf=crf))
    task.fit(train or [])
    return task


def test_iobes_prediction_missing_its_end_tag_is_no_entity():
    gold = [["B-PER", "I-PER", "E-PER", "O", "S-LOC"]]
    pred = [["B-PER", "I-PER", "I-PER", "O", "S-LOC"]]  # E-PER predicted as I-PER
    # Read as bio (what every token task got before schemes), PER counts as found: F1 1.0.
    assert tagger().metrics(pred, gold)["f1"] == 1.0
    # As iobes, B-PER I-PER I-PER never closes: 1 of 2 gold entities found, 1 predicted.
    metrics = tagger("iobes").metrics(pred, gold)
    assert (metrics["precision"], metrics["recall"]) == (1.0, 0.5)
    assert metrics["f1"] == pytest.approx(2 / 3)


def test_bmes_hand_computed_f1_and_entities():
    gold = [["B-NAME", "M-NAME", "E-NAME", "O", "S-ORG", "B-LOC", "E-LOC"],
            ["S-ORG", "O", "B-TITLE", "E-TITLE"]]
    pred = [["B-NAME", "M-NAME", "E-NAME", "O", "B-ORG", "B-LOC", "E-LOC"],  # ORG left open
            ["S-ORG", "O", "B-TITLE", "M-TITLE"]]                          # TITLE not closed
    # Gold: NAME, ORG, LOC, ORG, TITLE (5). Well-formed predictions: NAME, LOC, ORG (3, all right).
    metrics = tagger("bmes").metrics(pred, gold)
    assert metrics["precision"] == 1.0 and metrics["recall"] == pytest.approx(3 / 5)
    assert metrics["f1"] == pytest.approx(2 * 0.6 / 1.6)
    # Read as bio (every token task before schemes), both open entities count: F1 1.0.
    assert tagger().metrics(pred, gold)["f1"] == 1.0
    task = tagger("bmes", train=gold)
    logits = torch.full((1, 9, len(task.labels)), -5.0)
    for word, tag in enumerate(gold[0]):
        logits[0, word + 1, task.labels.index(tag)] = 5.0
    word_ids = [None, *range(7), None]
    [out] = task.explain(logits, [word_ids], torch.ones(1, 9))
    assert [{k: v for k, v in e.items() if k != "score"} for e in out["entities"]] == [
                               {"type": "NAME", "start": 0, "end": 3},
                               {"type": "ORG", "start": 4, "end": 5},
                               {"type": "LOC", "start": 5, "end": 7}]


def test_iob1_entities_start_with_i_and_b_only_splits_neighbours():
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["O", "I-ORG", "I-ORG"]]
    pred = [["I-PER", "I-PER", "I-PER", "O", "I-LOC"],  # two PERs merged into one
            ["O", "B-ORG", "I-ORG"]]                   # B- after O is not iob1
    # Gold: PER 0-2, PER 2-3, LOC, ORG 1-3 (4). Predicted and well formed: PER 0-3 (wrong),
    # LOC (right), ORG 2-3 (wrong: iob1 reads the lone B-ORG as no entity).
    metrics = tagger("iob1").metrics(pred, gold)
    assert metrics["precision"] == pytest.approx(1 / 3)
    assert metrics["recall"] == pytest.approx(1 / 4)
    assert metrics["f1"] == pytest.approx(2 / 7)
    # The same gold under an explicit bio is refused, with the scheme it follows named.
    _, problem = tagger("bio").parse(gold[1], ["a", "b", "c"])
    assert "breaks scheme bio" in problem and "scheme: iob1" in problem
    assert tagger("iob1").parse(gold[1], ["a", "b", "c"]) == (gold[1], None)


def test_none_scores_tags_as_classes():
    gold = [["DET", "NOUN", "VERB"], ["NOUN", "VERB"]]
    pred = [["DET", "NOUN", "NOUN"], ["NOUN", "VERB"]]
    task = tagger("none", train=gold)
    metrics = task.metrics(pred, gold)
    assert "f1" not in metrics and task.primary_metric == "token_accuracy"
    assert metrics["token_accuracy"] == pytest.approx(4 / 5)
    assert metrics["micro_f1"] == pytest.approx(4 / 5)
    # DET 1.0; NOUN P 2/3 R 1 -> 0.8; VERB P 1 R 1/2 -> 2/3.
    assert metrics["macro_f1"] == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    logits = torch.zeros(1, 4, len(task.labels))
    assert "entities" not in task.explain(logits, [[None, 0, 1, None]], torch.ones(1, 4))[0]


def test_primary_metric_follows_the_scheme_before_a_task_is_built(tmp_path):
    config = parse_config({"datasets": {"d": {"train": "t.jsonl", "tokens": "tokens"}}, "tasks": [
        {"name": "pos", "type": "token_classification", "dataset": "d", "label": "tags",
         "scheme": "none"},
        {"name": "ner", "type": "token_classification", "dataset": "d", "label": "tags"}]},
        "cfg.yaml", tmp_path)
    assert [t["metric"] for t in task_info(config)] == ["token_accuracy", "f1"]


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(json.dumps({"tokens": row, "tags": row}) + "\n" for row in rows),
                    encoding="utf-8")
    return path


def test_tags_outside_a_set_scheme_are_data_errors_with_file_line(tmp_path):
    write(tmp_path / "train.jsonl", [["B-X", "E-X"], ["S-X", "O"], ["B-X", "M-X", "E-X"]])
    config = parse_config({"datasets": {"d": {"train": "train.jsonl", "tokens": "tokens"}},
                           "tasks": [{"name": "ner", "type": "token_classification",
                                      "dataset": "d", "label": "tags", "scheme": "iobes"}]},
                          "cfg.yaml", tmp_path)
    with pytest.raises(DataValidationError) as caught:
        validate(config)
    message = str(caught.value)
    assert "train.jsonl:3" in message and "'M-X' is not a tag of scheme iobes" in message
    assert "scheme: bmes" in message
    assert "train.jsonl:1" not in message and "train.jsonl:2" not in message


def test_default_scheme_warns_naming_the_scheme_that_fits(caplog):
    with caplog.at_level(logging.WARNING, logger="polytask"):
        task = tagger(train=[["B-X", "M-X", "E-X"], ["S-Y", "O"]])
    assert "not well-formed bio" in caplog.text and "scheme: bmes" in caplog.text
    assert not task.constrain  # Viterbi keeps what the data has
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="polytask"):
        assert tagger(train=[["B-X", "I-X", "O"]]).constrain
    assert caplog.text == ""


@pytest.mark.parametrize("scheme", [s for s in SCHEME_NAMES if s != "none"])
def test_crf_viterbi_paths_always_fit_the_scheme(scheme):
    labels = {"bio": "B I", "iob1": "B I", "ioe1": "I E", "ioe2": "I E", "iobes": "B I E S",
              "bmes": "B M E S", "bilou": "B I L U"}[scheme].split()
    task = tagger(scheme, crf=True, train=[[f"{p}-X" for p in labels] + ["O"]])
    head = task.build_head(hidden_size=4, dropout=0.0)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in head.crf.parameters():
            p.normal_(std=3.0)
    for words in range(1, 6):
        for seed in range(20):
            logits = torch.randn(1, words + 2, len(task.labels), generator=torch.Generator().manual_seed(seed)) * 3
            [tags] = task.decode(logits, [[None, *range(words), None]], torch.ones(1, words + 2), head)
            assert ill_formed_at(scheme, tags) is None, (scheme, tags)


def test_every_span_scheme_reads_its_own_canonical_example():
    examples = {"bio": (["B-X", "I-X", "O", "B-Y"], [("X", 0, 2), ("Y", 3, 4)]),
                "iob1": (["I-X", "I-X", "B-X", "O"], [("X", 0, 2), ("X", 2, 3)]),
                "ioe2": (["I-X", "E-X", "O", "E-Y"], [("X", 0, 2), ("Y", 3, 4)]),
                "ioe1": (["I-X", "E-X", "I-X", "O"], [("X", 0, 2), ("X", 2, 3)]),
                "iobes": (["B-X", "E-X", "O", "S-Y"], [("X", 0, 2), ("Y", 3, 4)]),
                "bmes": (["B-X", "M-X", "E-X", "S-Y"], [("X", 0, 3), ("Y", 3, 4)]),
                "bilou": (["B-X", "L-X", "O", "U-Y"], [("X", 0, 2), ("Y", 3, 4)])}
    assert set(examples) == set(SCHEME_NAMES) - {"none"}
    for scheme, (tags, spans) in examples.items():
        assert ill_formed_at(scheme, tags) is None, scheme
        assert [(e["type"], e["start"], e["end"]) for e in entities(scheme, tags)] == spans, scheme
