"""``labels_file:``: integer label ids -> names, from a file with the name of id i on line i+1
(the ``label.txt`` / ``classes.txt`` that ships with many corpora; a ClassLabel's names).

Ids may be JSON numbers or digit strings, alone or in lists (multilabel, tags); a cell that is
already a name is left as it is. An id without a name is an issue at the row's file:line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polytask.config import DatasetConfig
from polytask.data.reading import read_lines
from polytask.data.records import Record
from polytask.errors import DataIssue


def name_label_ids(dataset: DatasetConfig, records: list[Record], labels: list[str],
                   issues: list[DataIssue]) -> None:
    """Replace label ids by their names in ``records`` (in place), for every label column that
    ``dataset.labels_file`` names a file for."""
    files = _files_by_column(dataset.labels_file, labels)
    for column, path in files.items():
        names = _names(path, issues)
        if names is None:
            continue
        for record in records:
            value, bad = _named(record.fields.get(column), names)
            record.fields[column] = value
            if bad is not None:
                issues.append(DataIssue(record.source, record.line, column, f"label id {bad} has no "
                                        f"name: {path} names ids 0-{len(names) - 1}",
                                        f"fix the id, or add its name on line {bad + 1} of {path}"))


def _files_by_column(spec: Path | dict[str, Path] | None, labels: list[str]) -> dict[str, Path]:
    if spec is None:
        return {}
    if isinstance(spec, dict):
        return {column: Path(path) for column, path in spec.items() if column in labels}
    return {column: Path(spec) for column in labels}


def _names(path: Path, issues: list[DataIssue]) -> list[str] | None:
    lines = read_lines(path, issues)
    if lines is None:
        return None
    names = [(text or "").strip() for _, text in lines]
    while names and not names[-1]:
        names.pop()
    blank = [number for (number, _), name in zip(lines, names) if not name]
    for number in blank:
        issues.append(DataIssue(str(path), number, "labels_file", "an empty label name",
                                "write one name per line: line i+1 names label id i"))
    return None if blank or not names else names


def _named(value: Any, names: list[str]) -> tuple[Any, int | None]:
    """The value with ids as names, and the first id without a name (None if all have one)."""
    if isinstance(value, list):
        pairs = [_named(item, names) for item in value]
        return [v for v, _ in pairs], next((bad for _, bad in pairs if bad is not None), None)
    if isinstance(value, bool):
        return value, None
    if isinstance(value, float) and value.is_integer():  # ids in a float column (pandas)
        value = int(value)
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
        return (names[index], None) if 0 <= index < len(names) else (value, index)
    return value, None
