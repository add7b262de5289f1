"""Readers of word-per-line layouts: CoNLL (word and tags in columns, a blank line between
sentences) and the JointBERT intent_slot folder (seq.in / seq.out / label, line i = example i)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polytask.config import DatasetConfig
from polytask.data.reading import Lines, issue, read_lines
from polytask.data.records import Record
from polytask.errors import DataIssue

#: The intent_slot (JointBERT) layout: which file of the folder holds each label field.
INTENT_SLOT_FILES = {"intent": "label", "slots": "seq.out"}


def read_conll(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    columns = {label: _conll_column(path, label, issues) for label in labels}
    valid = {label: index for label, index in columns.items() if index is not None}
    lines = read_lines(path, issues) or []
    sentences = (_conll_record(path, s, valid, issues) for s in _sentences(lines))
    return [record for record in sentences if record is not None]


def _conll_column(path: Path, label: str, issues: list[DataIssue]) -> int | None:
    """The tag column a task's ``label:`` names: "tags"/"-1" the last, a number that index."""
    if label == "tags":
        return -1
    if label.removeprefix("-").isdigit():
        return int(label)
    return issue(issues, path, None, label, f"a conll label: must be 'tags' or a column "
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
            issue(issues, path, number, "tokens", f"expected a word and its tag(s), found "
                   f"{len(parts)} column", "conll_line")
        usable = usable and len(parts) >= 2
        for label, index in columns.items():
            if len(parts) >= 2 and not -len(parts) <= index < len(parts):
                issue(issues, path, number, label, f"no column {index}: the line has "
                       f"{len(parts)}", "conll_column")
                usable = False
            elif usable:
                tags[label].append(parts[index])
        words.extend(parts[:1])
    if not usable:
        return None
    return Record(str(path), sentence[0][0], text=" ".join(words), words=words, fields=dict(tags))


# --------------------------------------------------------------------------- intent_slot


def read_intent_slot(folder: Path, dataset: DatasetConfig, labels: list[str],
                      split_words: bool, issues: list[DataIssue]) -> list[Record]:
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "folder not found"
        issue(issues, folder, None, "file", what, "folder")
        return []
    for label in labels:
        if label not in INTENT_SLOT_FILES:
            issue(issues, folder, None, label, f"unknown intent_slot field {label!r}",
                   "intent_slot_field")
    names = ["seq.in", *(INTENT_SLOT_FILES[name] for name in labels if name in INTENT_SLOT_FILES)]
    files = {name: read_lines(folder / name, issues) for name in names}
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
            issue(issues, folder / name, min(len(lines), expected) + 1, name, f"{name} has "
                   f"{len(lines)} lines but seq.in has {expected}", "aligned")
    return min(len(lines) for lines in files.values())


def _intent_slot_record(folder: Path, index: int, files: dict[str, Lines], labels: list[str],
                        issues: list[DataIssue]) -> Record | None:
    number, text = files["seq.in"][index]
    words = (text or "").split()
    if text is not None and not words:
        issue(issues, folder / "seq.in", number, "seq.in", "empty input text", "empty_text")
    if not words:
        return None
    fields: dict[str, Any] = {}
    if "intent" in labels:
        fields["intent"] = (files["label"][index][1] or "").strip() or None
    if "slots" in labels:
        tags = (files["seq.out"][index][1] or "").split() or None
        if tags is not None and len(tags) != len(words):
            issue(issues, folder / "seq.out", number, "slots", f"{len(words)} words in seq.in "
                   f"but {len(tags)} tags", "slots")
            tags = None
        fields["slots"] = tags
    return Record(str(folder), number, text=" ".join(words), words=words, fields=fields)
