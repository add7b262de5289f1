"""Very long lines and a large file with a few bad rows: every problem reported with its line."""

from __future__ import annotations

import json

import pytest
from toy import toy_config

from polytask.config import parse_config
from polytask.data.validation import validate
from polytask.errors import DataValidationError
from polytask.training.setup import prepare


def test_very_long_line_is_read_and_truncated_by_the_tokenizer(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    rows = (tmp_path / "train.jsonl").read_text().splitlines()
    long_row = json.loads(rows[0])
    long_row["text"] = " ".join(["red"] + ["the"] * 250_000)  # a 1 MB line
    long_row.pop("tokens")
    rows[0] = json.dumps(long_row)
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    raw["datasets"]["toy"].pop("tokens")
    config = parse_config(raw)
    records = validate(config)
    assert len(records["toy"]["train"][0].text) >= 1_000_000
    prepared = prepare(config)
    assert len(prepared.features["train"]["toy"][0]) == config.model.max_length


def test_large_file_reports_exactly_its_bad_lines(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    raw["tasks"][0]["labels"] = ["red", "blue", "green"]
    bad = {1_234, 50_000, 99_999}
    with open(tmp_path / "train.jsonl", "w", encoding="utf-8") as handle:
        for line in range(1, 100_001):
            color = "purple" if line in bad else "red"
            handle.write(json.dumps({"text": f"a {color} cat", "color": color}) + "\n")
    raw["datasets"]["toy"].pop("tokens")
    with pytest.raises(DataValidationError) as caught:
        validate(parse_config(raw), splits=("train",))
    assert sorted(issue.line for issue in caught.value.issues) == sorted(bad)
    assert all(issue.file.endswith("train.jsonl") for issue in caught.value.issues)
