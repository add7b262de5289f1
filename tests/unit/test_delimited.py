"""csv/tsv as they come: headerless files, columns by position, and quotes that would merge
rows (an unbalanced " in a TSV cell) reported with their line instead of swallowing rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from polytask.config import DatasetConfig, parse_config
from polytask.data.readers import read_split


def tsv_with_unbalanced_quotes(path: Path, rows: int = 200) -> Path:
    lines = [f"sentence number {i}\t{i % 2}" for i in range(rows)]
    lines[10] = '"Quoted start, never closed\t1'
    lines[150] = 'he said "x" then\t0'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_unbalanced_quotes_every_row_read_with_quoting_none(tmp_path):
    path = tsv_with_unbalanced_quotes(tmp_path / "sts.tsv")
    dataset = DatasetConfig(train=path, header=False, text=0, quoting="none")
    records, issues = read_split(dataset, "train", ["1"])
    assert issues == []
    assert len(records) == 200
    assert records[10].text == '"Quoted start, never closed' and records[10].fields == {"1": "1"}
    assert records[150].line == 151


def test_unbalanced_quote_with_csv_quoting_is_reported_at_its_line(tmp_path):
    path = tsv_with_unbalanced_quotes(tmp_path / "sts.tsv")
    records, issues = read_split(DatasetConfig(train=path, header=False, text=0), "train", ["1"])
    assert [(i.file, i.line, i.field) for i in issues] == [(str(path), 11, "row")]
    assert "runs to line 151" in issues[0].message and "quoting: none" in issues[0].hint
    assert len(records) == 59  # the merged row is skipped, and said so; nothing else lost


def test_legitimate_multiline_csv_cell_is_not_a_merge(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"two\nlines",a\nlast,b\n', encoding="utf-8")
    records, issues = read_split(DatasetConfig(train=path), "train", ["label"])
    assert issues == [] and [r.text for r in records] == ["two\nlines", "last"]


def test_headerless_columns_by_name_and_by_position(tmp_path):
    path = tmp_path / "goemotions.tsv"
    path.write_text("i love it\t1,4\tid1\nso sad\t2\tid2\n", encoding="utf-8")
    named = DatasetConfig(train=path, header=False, columns=["text", "emotions", "id"])
    records, issues = read_split(named, "train", ["emotions"])
    assert issues == [] and [r.fields["emotions"] for r in records] == ["1,4", "2"]
    assert [r.line for r in records] == [1, 2]
    by_position = DatasetConfig(train=path, header=False, text=0)
    records, issues = read_split(by_position, "train", ["1"])
    assert issues == [] and records[0].text == "i love it" and records[1].fields == {"1": "2"}


def test_headerless_wrong_cell_count_and_missing_position_reported(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\t0\nb\t1\textra\n", encoding="utf-8")
    records, issues = read_split(DatasetConfig(train=path, header=False, text=0), "train", ["5"])
    text = "\n".join(map(str, issues))
    assert f"{path}:1: [5] missing label column '5'" in text and f"{path}:2: [row] 3 cells" in text


def test_integer_positions_in_a_config_and_columns_need_header_false(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\t0\n", encoding="utf-8")
    raw = {"datasets": {"d": {"train": str(path), "header": False, "text": 0}},
           "tasks": [{"name": "t", "type": "classification", "dataset": "d", "label": 1}]}
    config = parse_config(raw)
    assert config.datasets["d"].text == "0" and config.tasks[0].label == "1"
    with pytest.raises(ValueError, match="header: false"):
        DatasetConfig(train=path, columns=["text", "label"])


def test_every_format_is_a_registered_member():
    import polytask

    assert polytask.list_members()["data format"] == [
        "arrow", "conll", "csv", "intent_slot", "jsonl", "parquet", "tsv"]


def test_csv_merge_is_a_warning_with_its_line_and_the_row_kept(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"opens here,a\nrow two,b\nends" here,c\nlast,d\n', encoding="utf-8")
    with caplog.at_level("WARNING", logger="polytask"):
        records, issues = read_split(DatasetConfig(train=path), "train", ["label"])
    assert issues == [] and [r.line for r in records] == [2, 5]
    assert f"{path}:2:" in caplog.text and "runs to line 4" in caplog.text
