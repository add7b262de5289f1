"""Reading a JSONL input file line by line, with every bad line reported (not just the first)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polytask.errors import DataIssue, DataValidationError


def json_lines(path: Path, issues: list[DataIssue], example: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of each non-blank line; a line that is not JSON becomes an
    issue (``example`` shows what a good line looks like) and is skipped. The caller raises
    ``DataValidationError(issues)`` after checking the values too, so all problems come at once."""
    if not path.is_file():
        raise DataValidationError([DataIssue(str(path), None, "file", "input file not found",
                                             "pass an existing JSONL file")])
    for number, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            issues.append(DataIssue(str(path), number, "json", f"not valid JSON ({exc.msg})",
                                    f"write one JSON object per line, e.g. {example}"))
            continue
        yield number, value
