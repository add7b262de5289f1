"""Hostile data lines: each is an issue with file:line (exit 2) or a documented normalisation,
never a traceback, and one bad line never hides the lines after it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import run_in_process  # noqa: E402

from polytask.config import TaskConfig, parse_config  # noqa: E402
from polytask.data.validation import validate  # noqa: E402
from polytask.errors import DataValidationError  # noqa: E402
from polytask.inference import read_inputs  # noqa: E402
from polytask.tasks.base import build_task  # noqa: E402

GOOD = '{"text": "a red cat", "color": "red"}'
HOSTILE = {
    "deep nesting": '{"text": "a red cat", "color": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "5000-digit integer": '{"text": "a red cat", "color": ' + "7" * 5000 + "}",
    "lone surrogate": '{"text": "red \\ud800 cat", "color": "red"}',
    "array label": '{"text": "a red cat", "color": ["red", "blue"]}',
    "object label": '{"text": "a red cat", "color": {"name": "red"}}',
}


def jsonl_config(tmp_path: Path, tiny_encoder: Path, lines: list[str]) -> dict:
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw["datasets"]["toy"] = {"train": str(tmp_path / "train.jsonl")}
    return raw


def test_every_hostile_json_line_is_an_issue_on_its_own_line(tmp_path, tiny_encoder, monkeypatch, capsys):
    lines = [GOOD, *HOSTILE.values(), GOOD]
    raw = jsonl_config(tmp_path, tiny_encoder, lines)
    with pytest.raises(DataValidationError) as caught:
        validate(parse_config(raw))
    by_line = {issue.line: issue for issue in caught.value.issues}
    assert sorted(by_line) == list(range(2, 2 + len(HOSTILE)))
    assert "nested too deeply" in by_line[2].message
    assert "digits" in by_line[3].message
    assert "lone surrogate" in by_line[4].message
    assert "got an array" in by_line[5].message and "got an object" in by_line[6].message
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, err = run_in_process(monkeypatch, capsys, "validate-data", config)
    assert code == 2 and "train.jsonl:4" in err and "Traceback" not in err


def test_numeric_labels_name_one_class_by_value(tmp_path, tiny_encoder):
    lines = ['{"text": "a red cat", "color": 1}', '{"text": "a cat", "color": 1.0}',
             '{"text": "the cat", "color": 2.5}', '{"text": "a dog", "color": "1"}']
    records = validate(parse_config(jsonl_config(tmp_path, tiny_encoder, lines)))["toy"]["train"]
    task = build_task(TaskConfig(name="color", type="classification", dataset="toy", label="color"))
    task.fit([task.parse(r.fields["color"], None)[0] for r in records])
    assert task.labels == ["1", "2.5"]


@pytest.mark.parametrize(("kind", "raw", "message"), [
    ("regression", "1" + "0" * 400, "is not a number"),        # beyond float range
    ("token_classification", 5, "tags must be a list"),
    ("multilabel", [["a"]], "got an array"),
    ("multilabel", {"a": 1}, "got an object"),
])
def test_labels_of_the_wrong_shape_are_problems_not_crashes(kind, raw, message):
    task = build_task(TaskConfig(name="t", type=kind, dataset="d", label="l"))
    value = int(raw) if kind == "regression" else raw
    assert task.parse(value, ["a"])[0] is None
    assert message in task.parse(value, ["a"])[1]


def test_csv_cell_longer_than_csvs_default_limit_is_read_and_later_rows_checked(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    long_text = "red " + "cat " * 50_000  # 200,004 characters in one cell
    rows = ["text,color", f'"{long_text}",red', "a blue dog,blue", "a green bird,green,extra"]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    raw["datasets"]["toy"] = {"train": str(tmp_path / "train.csv")}
    with pytest.raises(DataValidationError) as caught:
        validate(parse_config(raw))
    assert [(i.line, i.field) for i in caught.value.issues] == [(4, "row")]
    rows.pop()
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    records = validate(parse_config(raw))["toy"]["train"]
    assert len(records) == 2 and len(records[0].text) == len(long_text)


def test_latin1_or_hostile_predict_input_is_an_issue_per_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "a red cat"}\n{"text": "caf\xe9"}\n'
                     + json.dumps({"text": "x"}).encode()[:-1] + b', "n": ' + b"9" * 5000 + b"}\n"
                     + b'{"text": "red \\udfff cat"}\n{"text": "a blue dog"}\n')
    with pytest.raises(DataValidationError) as caught:
        read_inputs(path)
    issues = {issue.line: issue.message for issue in caught.value.issues}
    assert sorted(issues) == [2, 3, 4]
    assert "invalid UTF-8" in issues[2] and "digits" in issues[3] and "surrogate" in issues[4]
