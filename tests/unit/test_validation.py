"""validate(): every split read, every label parsed, every problem reported at once."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from polytask.config import parse_config
from polytask.data.validation import validate
from polytask.errors import ConfigError, DataValidationError


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def run_config(tmp_path: Path, datasets: dict[str, Any], tasks: list[dict[str, Any]]):
    return parse_config({"datasets": datasets, "tasks": tasks}, "cfg.yaml", tmp_path)


def classify(dataset: str = "d", label: str = "label", **extra) -> dict[str, Any]:
    return {"name": f"{dataset}_{label}", "type": "classification", "dataset": dataset,
            "label": label, **extra}


def tag(dataset: str = "d", label: str = "tags", **extra) -> dict[str, Any]:
    return {"name": f"{dataset}_{label}", "type": "token_classification", "dataset": dataset,
            "label": label, **extra}


def problems(config) -> str:
    with pytest.raises(DataValidationError) as caught:
        validate(config)
    return str(caught.value)


def test_valid_data_returns_records_by_dataset_and_split(tmp_path):
    write(tmp_path / "train.csv", "text,label,tags\na b,pos,O O\nc,,B-X\n")
    write(tmp_path / "dev.csv", "text,label,tags\nd,neg,O\n")
    config = run_config(tmp_path, {"d": {"train": "train.csv", "dev": "dev.csv"}},
                        [classify(), tag()])
    data = validate(config)
    assert set(data) == {"d"} and set(data["d"]) == {"train", "dev"}
    train = data["d"]["train"]
    # A token task on a csv without tokens: splits the text on whitespace.
    assert [r.words for r in train] == [["a", "b"], ["c"]]
    assert train[1].fields == {"label": None, "tags": "B-X"}


def test_only_requested_splits_are_read(tmp_path):
    write(tmp_path / "train.csv", "text,label\na,pos\n")
    config = run_config(tmp_path, {"d": {"train": "train.csv", "test": "missing.csv"}},
                        [classify()])
    assert set(validate(config, splits=("train",))["d"]) == {"train"}


@pytest.mark.parametrize(
    ("files", "dataset", "task", "expected"),
    [
        pytest.param({}, {"train": "train.csv"}, classify(), ["train.csv: [file] file not found"],
                     id="missing file"),
        pytest.param({"train.jsonl": ""}, {"train": "train.jsonl"}, classify(),
                     ["train.jsonl: [file] no records"], id="empty file"),
        pytest.param({"train.csv": "sentence,label\na,b\n"}, {"train": "train.csv"}, classify(),
                     ["train.csv:1: [text] missing input column 'text'", "'sentence', 'label'"],
                     id="missing column"),
        pytest.param({"train.csv": "text,label\na,x\n \t,x\n"}, {"train": "train.csv"},
                     classify(), ["train.csv:3: [text] empty input text"], id="empty text"),
        pytest.param({"train.csv": "text,label\na,pos\nb,maybe\n"}, {"train": "train.csv"},
                     classify(labels=["pos", "neg"]),
                     ["train.csv:3: [label] task 'd_label': unknown label 'maybe'",
                      "add the label to labels:"], id="unknown label"),
        pytest.param({"train.jsonl": '{"w": ["a"], "tags": ["O"]}\n'
                                     '{"w": ["a", "b"], "tags": ["O"]}\n'},
                     {"train": "train.jsonl", "tokens": "w"}, tag(),
                     ["train.jsonl:2: [tags] task 'd_tags': 2 words but 1 tags"],
                     id="jsonl tokens vs tags"),
        pytest.param({"train/seq.in": "a b\nc d\n", "train/seq.out": "O O\nO\n",
                      "train/label": "x\ny\n"}, {"train": "train"}, tag(label="slots"),
                     ["seq.out:2: [slots] 2 words in seq.in but 1 tags"],
                     id="intent_slot seq.in vs seq.out"),
        pytest.param({"train.csv": b"text,label\na,x\nb\xff,x\nc,x\n"}, {"train": "train.csv"},
                     classify(), ["train.csv:3: [encoding] invalid UTF-8 byte 0xff"],
                     id="invalid utf-8"),
        pytest.param({"train.jsonl": '{"text": "a", "label": "x"}\nnot json\n'},
                     {"train": "train.jsonl"}, classify(),
                     ["train.jsonl:2: [json] not valid JSON"], id="non-JSON line"),
        pytest.param({"train.csv": "text,label\na,\nb,\n"}, {"train": "train.csv"}, classify(),
                     ["train.csv: [label] task 'd_label' has no labelled records in train"],
                     id="no labelled train records"),
    ],
)
def test_validation_matrix(tmp_path, files, dataset, task, expected):
    for name, content in files.items():
        write(tmp_path / name, content)
    message = problems(run_config(tmp_path, {"d": dataset}, [task]))
    for text in expected:
        assert text in message


def test_duplicate_task_names_are_a_config_error(tmp_path):
    raw = {"datasets": {"d": {"train": "train.csv"}},
           "tasks": [classify(name="same"), classify(name="same", label="other")]}
    with pytest.raises(ConfigError, match="duplicate task name 'same'"):
        parse_config(raw, "cfg.yaml", tmp_path)


def test_every_problem_of_every_file_in_one_error(tmp_path):
    write(tmp_path / "a_train.csv", "text,label\nok,pos\n,pos\nfine,bad\n")
    write(tmp_path / "a_dev.csv", 'text,label\nx,pos\n"y",neg,extra\n')
    write(tmp_path / "b.conll", "w O\nlonely\n\nv B-X\n")
    config = run_config(
        tmp_path,
        {"a": {"train": "a_train.csv", "dev": "a_dev.csv", "test": "a_test.csv"},
         "b": {"train": "b.conll"}},
        [classify("a", labels=["pos", "neg"]), tag("b", labels=["O"])],
    )
    with pytest.raises(DataValidationError) as caught:
        validate(config)
    where = [(Path(i.file).name, i.line) for i in caught.value.issues]
    assert where == [("a_dev.csv", 3), ("a_test.csv", None), ("a_train.csv", 3),
                     ("a_train.csv", 4), ("b.conll", 2), ("b.conll", 4)]
    message = str(caught.value)
    assert message.startswith("6 data problem(s) found")
    assert "unknown label 'B-X'" in message and "unknown label 'bad'" in message


def test_unseen_dev_labels_are_logged_not_errors(tmp_path, caplog):
    write(tmp_path / "train.jsonl", '{"text": "a", "label": "pos"}\n')
    write(tmp_path / "dev.jsonl", '{"text": "b", "label": "neg"}\n{"text": "c", "label": "neg"}\n'
          '{"text": "d"}\n')
    config = run_config(tmp_path, {"d": {"train": "train.jsonl", "dev": "dev.jsonl"}},
                        [classify()])
    with caplog.at_level(logging.WARNING, logger="polytask.data.validation"):
        data = validate(config)
    assert len(data["d"]["dev"]) == 3
    assert "task 'd_label': dev has labels never seen in train" in caplog.text
    assert "neg (2)" in caplog.text


def test_conll_and_intent_slot_validate(tmp_path):
    write(tmp_path / "ner.conll", "-DOCSTART- O\n\nEU B-ORG\nsays O\n")
    write(tmp_path / "atis/seq.in", "book it\n")
    write(tmp_path / "atis/seq.out", "O O\n")
    write(tmp_path / "atis/label", "book\n")
    config = run_config(tmp_path, {"ner": {"train": "ner.conll"}, "atis": {"train": "atis"}},
                        [tag("ner"), tag("atis", "slots"), classify("atis", "intent")])
    data = validate(config)
    assert data["ner"]["train"][0].fields == {"tags": ["B-ORG", "O"]}
    assert data["atis"]["train"][0].fields == {"slots": ["O", "O"], "intent": "book"}
