"""Reading a JSONL input file line by line, with every bad line reported (not just the first)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polytask.data.reading import HINTS, parse_json, read_lines
from polytask.errors import DataIssue, DataValidationError


def json_lines(path: Path, issues: list[DataIssue], example: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; a line that is not UTF-8 or not usable
    JSON becomes an issue (``example`` shows what a good line looks like) and is skipped. The
    caller raises ``DataValidationError(issues)`` after checking the values too, so all
    problems come at once."""
    if not path.is_file():
        raise DataValidationError([DataIssue(str(path), None, "file", "input file not found",
                                             "pass an existing JSONL file")])
    for number, text in read_lines(path, issues) or []:
        if text is None or not text.strip():
            continue  # None: invalid UTF-8, reported by read_lines
        value, problem = parse_json(text)
        if problem is not None:
            message, hint = problem
            fix = f"write one JSON object per line, e.g. {example}" if hint == "json" else HINTS[hint]
            issues.append(DataIssue(str(path), number, "json", message, fix))
            continue
        yield number, value
