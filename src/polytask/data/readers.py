"""Readers: one per ``DatasetConfig.format``, each turning a split's file(s) into Records.

Readers never raise on bad data: every problem becomes a DataIssue (file, 1-based line,
field, message, hint) and reading goes on, so one run reports all of a file's problems.
Files are read as bytes and decoded line by line, so an invalid UTF-8 byte is reported on
its own line instead of failing the whole file.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from polytask.config import DatasetConfig
from polytask.data.records import Record
from polytask.data.records import split_words as split_text
from polytask.data.tabular import parse_features
from polytask.errors import DataIssue

#: (1-based line number, text); text is None when the line is not valid UTF-8 (already reported).
Lines = list[tuple[int, str | None]]
#: The intent_slot (JointBERT) layout: which file of the folder holds each label field.
INTENT_SLOT_FILES = {"intent": "label", "slots": "seq.out"}
_MISSING = object()
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               dict: "object", type(None): "null"}
_HINTS = {
    "path": "fix the path in the config (relative paths start at the config's folder)",
    "utf8": "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 old > new)",
    "no_records": "add examples, or fix the path of this split in the config",
    "cells": "quote cells that contain the delimiter, or add the missing cells (empty is fine)",
    "input_column": "rename the column in the file, or set text:/tokens:/text_pair: (or "
                    "categorical:/numeric:) on the dataset to present columns",
    "label_column": "add the column (empty cells are fine: unlabelled rows), or fix the task's "
                    "label:",
    "json": "write one complete JSON object per line; escape line breaks in strings as \\n",
    "object": 'write each line as an object: {"text": ..., "label": ...}',
    "key": "add the key to every object, or set the dataset's column names in the config",
    "empty_text": "fill in the text, or delete the row",
    "type": "store text as a JSON string, and words as a list of strings or one string",
    "conll_label": "set the task's label: to 'tags' (last column) or a 0-based column number",
    "conll_line": "separate the word and its tags with a tab or spaces; a blank line ends a "
                  "sentence",
    "conll_column": "fix the line, or point the task's label: at an existing column",
    "folder": "point the split at a folder holding seq.in, seq.out and label (JointBERT layout)",
    "intent_slot_field": "set the task's label: to 'intent' (file label) or 'slots' (seq.out)",
    "aligned": "line i of seq.in, seq.out and label is one example: give the three files the "
               "same number of lines",
    "slots": "give every word of seq.in exactly one tag (e.g. O) on the same line of seq.out",
}


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
        _issue(issues, path, None, "file", "no records: the file is empty (or holds only a "
               "header or blank lines)", "no_records")
    return records, issues


def label_file(dataset: DatasetConfig, record: Record, label: str) -> str:
    """The file holding ``label`` for ``record``: intent_slot keeps each field in its own file."""
    if dataset.format == "intent_slot" and label in INTENT_SLOT_FILES:
        return str(Path(record.source) / INTENT_SLOT_FILES[label])
    return record.source


def _issue(issues: list[DataIssue], source: str | Path, line: int | None, field: str,
           message: str, hint: str) -> None:
    issues.append(DataIssue(str(source), line, field, message, _HINTS[hint]))


def _read_lines(path: Path, issues: list[DataIssue]) -> Lines | None:
    """The lines of a file (BOM stripped, CRLF accepted); None if it cannot be read."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "file not found"
        return _issue(issues, path, None, "file", what, "path")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _issue(issues, path, None, "file", f"cannot read: {exc.strerror}", "path")
    chunks = data.removeprefix(codecs.BOM_UTF8).split(b"\n")
    if chunks[-1] == b"":
        chunks.pop()  # the newline ending the last line does not start another one
    lines: Lines = []
    for number, chunk in enumerate(chunks, 1):
        chunk = chunk.removesuffix(b"\r")
        try:
            lines.append((number, chunk.decode("utf-8")))
        except UnicodeDecodeError as exc:
            _issue(issues, path, number, "encoding", f"invalid UTF-8 byte "
                   f"0x{chunk[exc.start]:02x} at column {exc.start + 1}", "utf8")
            lines.append((number, None))
    return lines


# --------------------------------------------------------------------------- csv / tsv / jsonl


def _read_table(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    lines = _read_lines(path, issues)
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
            _issue(issues, path, line, "row", f"{len(row)} cells but the header has "
                   f"{len(header)}", "cells")
        elif record := _build_record(str(path), line, dict(zip(header, row)), dataset, labels,
                                     split_words, issues):
            records.append(record)
    return records


def _csv_rows(path: Path, lines: Lines, delimiter: str,
              issues: list[DataIssue]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank csv rows with the line each starts on (a quoted cell may span lines)."""
    good = [(number, text) for number, text in lines if text is not None]
    reader = csv.reader((text + "\n" for _, text in good), delimiter=delimiter)
    while True:
        start = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = good[min(reader.line_num, len(good)) - 1][0]
            return _issue(issues, path, line, "row", f"cannot parse the row: {exc}", "cells")
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
            _issue(issues, path, line, column, f"missing {kind} column {column!r}; columns "
                   f"present: {present}", hint)
    return all(column in header for column in inputs)


def _read_jsonl(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    records = []
    for line, text in _read_lines(path, issues) or []:
        if text is None or not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            _issue(issues, path, line, "json", f"not valid JSON: {exc.msg} (column {exc.colno})",
                   "json")
            continue
        if not isinstance(obj, dict):
            _issue(issues, path, line, "json", f"a JSON {_kind(obj)}, not an object", "object")
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
        _issue(issues, source, line, column, f"no {column!r} key", "key")
    elif _blank(value) or value == []:
        _issue(issues, source, line, column, f"empty input text in {column!r}", "empty_text")
    elif isinstance(value, list):
        _issue(issues, source, line, column, f"{column!r} must hold non-empty strings", "type")
    else:
        _issue(issues, source, line, column, f"{column!r} must be a string, got {_kind(value)}",
               "type")


# --------------------------------------------------------------------------- conll


def _read_conll(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    columns = {label: _conll_column(path, label, issues) for label in labels}
    valid = {label: index for label, index in columns.items() if index is not None}
    lines = _read_lines(path, issues) or []
    sentences = (_conll_record(path, s, valid, issues) for s in _sentences(lines))
    return [record for record in sentences if record is not None]


def _conll_column(path: Path, label: str, issues: list[DataIssue]) -> int | None:
    """The tag column a task's ``label:`` names: "tags"/"-1" the last, a number that index."""
    if label == "tags":
        return -1
    if label.removeprefix("-").isdigit():
        return int(label)
    return _issue(issues, path, None, label, f"a conll label: must be 'tags' or a column "
                  f"number, got {label!r}", "conll_label")


def _sentences(lines: Lines) -> Iterator[Lines]:
    """Groups of consecutive non-blank lines; -DOCSTART- lines end a group and are dropped."""
    sentence: Lines = []
    for number, text in lines:
        if text is None or (text.strip() and not text.startswith("-DOCSTART-")):
            sentence.append((number, text))
        elif sentence:
            yield sentence
            sentence = []
    if sentence:
        yield sentence


def _conll_record(path: Path, sentence: Lines, columns: dict[str, int],
                  issues: list[DataIssue]) -> Record | None:
    words: list[str] = []
    tags: dict[str, list[str]] = {label: [] for label in columns}
    usable = True  # an undecodable line (already reported) also spoils its sentence
    for number, text in sentence:
        parts = [] if text is None else text.split()
        if text is not None and len(parts) < 2:
            _issue(issues, path, number, "tokens", f"expected a word and its tag(s), found "
                   f"{len(parts)} column", "conll_line")
        usable = usable and len(parts) >= 2
        for label, index in columns.items():
            if len(parts) >= 2 and not -len(parts) <= index < len(parts):
                _issue(issues, path, number, label, f"no column {index}: the line has "
                       f"{len(parts)}", "conll_column")
                usable = False
            elif usable:
                tags[label].append(parts[index])
        words.extend(parts[:1])
    if not usable:
        return None
    return Record(str(path), sentence[0][0], text=" ".join(words), words=words, fields=dict(tags))


# --------------------------------------------------------------------------- intent_slot


def _read_intent_slot(folder: Path, dataset: DatasetConfig, labels: list[str],
                      split_words: bool, issues: list[DataIssue]) -> list[Record]:
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "folder not found"
        _issue(issues, folder, None, "file", what, "folder")
        return []
    for label in labels:
        if label not in INTENT_SLOT_FILES:
            _issue(issues, folder, None, label, f"unknown intent_slot field {label!r}",
                   "intent_slot_field")
    names = ["seq.in", *(INTENT_SLOT_FILES[name] for name in labels if name in INTENT_SLOT_FILES)]
    files = {name: _read_lines(folder / name, issues) for name in names}
    if any(lines is None for lines in files.values()):
        return []
    aligned = {name: _drop_trailing_blanks(lines or []) for name, lines in files.items()}
    count = _check_aligned(folder, aligned, issues)
    records = (_intent_slot_record(folder, i, aligned, labels, issues) for i in range(count))
    return [record for record in records if record is not None]


def _drop_trailing_blanks(lines: Lines) -> Lines:
    while lines and lines[-1][1] is not None and not lines[-1][1].strip():
        lines = lines[:-1]
    return lines


def _check_aligned(folder: Path, files: dict[str, Lines], issues: list[DataIssue]) -> int:
    """Report files whose line count differs from seq.in; the number of aligned lines."""
    expected = len(files["seq.in"])
    for name, lines in files.items():
        if len(lines) != expected:
            _issue(issues, folder / name, min(len(lines), expected) + 1, name, f"{name} has "
                   f"{len(lines)} lines but seq.in has {expected}", "aligned")
    return min(len(lines) for lines in files.values())


def _intent_slot_record(folder: Path, index: int, files: dict[str, Lines], labels: list[str],
                        issues: list[DataIssue]) -> Record | None:
    number, text = files["seq.in"][index]
    words = (text or "").split()
    if text is not None and not words:
        _issue(issues, folder / "seq.in", number, "seq.in", "empty input text", "empty_text")
    if not words:
        return None
    fields: dict[str, Any] = {}
    if "intent" in labels:
        fields["intent"] = (files["label"][index][1] or "").strip() or None
    if "slots" in labels:
        tags = (files["seq.out"][index][1] or "").split() or None
        if tags is not None and len(tags) != len(words):
            _issue(issues, folder / "seq.out", number, "slots", f"{len(words)} words in seq.in "
                   f"but {len(tags)} tags", "slots")
            tags = None
        fields["slots"] = tags
    return Record(str(folder), number, text=" ".join(words), words=words, fields=fields)


_Reader = Callable[[Path, DatasetConfig, list[str], bool, list[DataIssue]], list[Record]]
_READERS: dict[str, _Reader] = {"csv": _read_table, "tsv": _read_table, "jsonl": _read_jsonl,
                                "conll": _read_conll, "intent_slot": _read_intent_slot}
