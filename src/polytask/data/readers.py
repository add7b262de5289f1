"""Readers: one per ``DatasetConfig.format``, each turning a split's file(s) into Records.

Readers never raise on bad data: every problem becomes a DataIssue (file, 1-based line,
field, message, hint) and reading goes on, so one run reports all of a file's problems.
csv / tsv / jsonl live here; CoNLL and the intent_slot folder in word_readers.py; what they
share (decoding line by line, issues with hints) in reading.py.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from polytask.config import DatasetConfig
from polytask.data.reading import Lines, issue, parse_json, read_lines
from polytask.data.records import Record
from polytask.data.records import split_words as split_text
from polytask.data.tabular import parse_features
from polytask.data.word_readers import INTENT_SLOT_FILES, read_conll, read_intent_slot
from polytask.errors import DataIssue

_MISSING = object()
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               dict: "object", type(None): "null"}

def read_split(dataset: DatasetConfig, split: str, label_columns: list[str], *,
               split_words: bool = False) -> tuple[list[Record], list[DataIssue]]:
    """Read one split ("train", "dev" or "test"): the usable records and every problem found.

    ``label_columns`` are the ``label:`` values of the tasks on this dataset. With
    ``split_words`` a csv/tsv/jsonl dataset without ``tokens:`` gets ``words = split_words(text)``
    (whitespace, and each CJK character a word: records.split_words),
    which token-level tasks need. A split without a configured path reads as nothing.
    """
    path = dataset.split_path(split)
    if path is None:
        return [], []
    if dataset.is_tabular and split_words:
        return [], [DataIssue(str(path), None, "tasks", "a token-level task reads words, and a "
                              "tabular dataset (categorical:/numeric:) has none",
                              "use sequence-level tasks (classification, regression...) on it")]
    issues: list[DataIssue] = []
    reader = _READERS[str(dataset.format)]
    records = reader(Path(path), dataset, list(dict.fromkeys(label_columns)), split_words, issues)
    if not records and not issues:
        issue(issues, path, None, "file", "no records: the file is empty (or holds only a "
               "header or blank lines)", "no_records")
    return records, issues


def label_file(dataset: DatasetConfig, record: Record, label: str) -> str:
    """The file holding ``label`` for ``record``: intent_slot keeps each field in its own file."""
    if dataset.format == "intent_slot" and label in INTENT_SLOT_FILES:
        return str(Path(record.source) / INTENT_SLOT_FILES[label])
    return record.source




# --------------------------------------------------------------------------- csv / tsv / jsonl


def _read_table(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    lines = read_lines(path, issues)
    rows = _csv_rows(path, lines or [], "\t" if dataset.format == "tsv" else ",", issues)
    header_line, header = next(rows, (0, None))
    if header is None:
        return []
    header = [name.strip() for name in header]
    if not _check_header(path, header_line, header, dataset, labels, issues):
        return []
    records = []
    for line, row in rows:
        if len(row) != len(header):
            issue(issues, path, line, "row", f"{len(row)} cells but the header has "
                   f"{len(header)}", "cells")
        elif record := _build_record(str(path), line, dict(zip(header, row)), dataset, labels,
                                     split_words, issues):
            records.append(record)
    return records


def _csv_rows(path: Path, lines: Lines, delimiter: str,
              issues: list[DataIssue]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank csv rows with the line each starts on (a quoted cell may span lines); a row
    that cannot be parsed is reported and reading goes on with the next one."""
    good = [(number, text) for number, text in lines if text is not None]
    # A cell can be as long as the file, not only csv's default 131,072 characters; the limit
    # is process-wide, so it is only ever raised.
    csv.field_size_limit(max(csv.field_size_limit(), sum(len(text) + 1 for _, text in good)))
    reader = csv.reader((text + "\n" for _, text in good), delimiter=delimiter)
    while True:
        start = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = good[min(reader.line_num, len(good)) - 1][0]
            issue(issues, path, line, "row", f"cannot parse the row: {exc}", "cells")
            continue
        if any(cell.strip() for cell in row):
            yield good[start][0], row


def _check_header(path: Path, line: int, header: list[str], dataset: DatasetConfig,
                  labels: list[str], issues: list[DataIssue]) -> bool:
    """Report missing columns once, on the header line; False if an input column is missing."""
    inputs = dataset.input_columns()
    present = ", ".join(repr(name) for name in header)
    for column, kind, hint in [*((c, "input", "input_column") for c in inputs),
                               *((c, "label", "label_column") for c in labels)]:
        if column not in header:
            issue(issues, path, line, column, f"missing {kind} column {column!r}; columns "
                   f"present: {present}", hint)
    return all(column in header for column in inputs)


def _read_jsonl(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    records = []
    for line, text in read_lines(path, issues) or []:
        if text is None or not text.strip():
            continue
        obj, problem = parse_json(text)
        if problem is not None:
            issue(issues, path, line, "json", *problem)
            continue
        if not isinstance(obj, dict):
            issue(issues, path, line, "json", f"a JSON {_kind(obj)}, not an object", "object")
        elif record := _build_record(str(path), line, obj, dataset, labels, split_words, issues):
            records.append(record)
    return records


def _build_record(source: str, line: int, cells: dict[str, Any], dataset: DatasetConfig,
                  labels: list[str], split_words: bool, issues: list[DataIssue]) -> Record | None:
    """One record from a csv row or a JSON object; None (and an issue) if its input is bad."""
    if dataset.is_tabular:  # feature columns instead of text (data/tabular.py)
        features = parse_features(source, line, cells, dataset.categorical or [],
                                  dataset.numeric or [], issues)
        fields = {label: None if _blank(cells.get(label)) else cells.get(label) for label in labels}
        return None if features is None else Record(source, line, features=features, fields=fields)
    if dataset.tokens:
        words = _words(source, line, cells.get(dataset.tokens, _MISSING), dataset.tokens, issues)
        text = None if words is None else " ".join(words)
    else:
        text = _text(source, line, cells.get(dataset.text, _MISSING), dataset.text, issues)
        words = split_text(text) if text is not None and split_words else None
    pair = None
    if dataset.text_pair:
        pair = _text(source, line, cells.get(dataset.text_pair, _MISSING), dataset.text_pair,
                     issues)
    if text is None or (dataset.text_pair and pair is None):
        return None
    # An empty cell or absent key is a partial label: that task does not train on the row.
    fields = {label: None if _blank(cells.get(label)) else cells.get(label) for label in labels}
    return Record(source, line, text=text, words=words, text_pair=pair, fields=fields)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _text(source: str, line: int, value: Any, column: str,
          issues: list[DataIssue]) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    _input_problem(source, line, value, column, issues)
    return None


def _words(source: str, line: int, value: Any, column: str,
           issues: list[DataIssue]) -> list[str] | None:
    """Pre-split words: a JSON list of strings, or one space-separated string."""
    if isinstance(value, str) and value.strip():
        return value.split()
    if isinstance(value, list) and value and all(isinstance(w, str) and w.strip() for w in value):
        return list(value)
    _input_problem(source, line, value, column, issues)
    return None


def _input_problem(source: str, line: int, value: Any, column: str,
                   issues: list[DataIssue]) -> None:
    if value is _MISSING:
        issue(issues, source, line, column, f"no {column!r} key", "key")
    elif _blank(value) or value == []:
        issue(issues, source, line, column, f"empty input text in {column!r}", "empty_text")
    elif isinstance(value, list):
        issue(issues, source, line, column, f"{column!r} must hold non-empty strings", "type")
    else:
        issue(issues, source, line, column, f"{column!r} must be a string, got {_kind(value)}",
               "type")


_Reader = Callable[[Path, DatasetConfig, list[str], bool, list[DataIssue]], list[Record]]
_READERS: dict[str, _Reader] = {"csv": _read_table, "tsv": _read_table, "jsonl": _read_jsonl,
                                "conll": read_conll, "intent_slot": read_intent_slot}
