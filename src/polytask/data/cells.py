"""One Record from one row's cells (a csv row, a JSON object, a table row), with every
problem of its input cells reported as a DataIssue (file, line, column, hint)."""

from __future__ import annotations

from typing import Any

from polytask.config import DatasetConfig
from polytask.data.reading import issue
from polytask.data.records import Record
from polytask.data.records import split_words as split_text
from polytask.data.tabular import parse_features
from polytask.errors import DataIssue

_MISSING = object()
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               dict: "object", type(None): "null"}


def build_record(source: str, line: int, cells: dict[str, Any], dataset: DatasetConfig,
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


def json_kind(value: Any) -> str:
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
        issue(issues, source, line, column, f"{column!r} must be a string, got {json_kind(value)}",
               "type")
