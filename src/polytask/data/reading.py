"""What every reader shares: a file's lines decoded one by one (an invalid UTF-8 byte is
reported on its own line instead of failing the whole file) and problems recorded as
DataIssues with a hint on how to fix them."""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any

from polytask.errors import DataIssue

#: (1-based line number, text); text is None when the line is not valid UTF-8 (already reported).
Lines = list[tuple[int, str | None]]
HINTS = {
    "path": "fix the path in the config (relative paths start at the config's folder)",
    "utf8": "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 old > new)",
    "no_records": "add examples, or fix the path of this split in the config",
    "cells": "quote cells that contain the delimiter, or add the missing cells (empty is fine)",
    "quoting": "set quoting: none on the dataset if quotes in this file are plain text (TSV "
               "corpora), or close the quote",
    "input_column": "rename the column in the file, or set text:/tokens:/text_pair: (or "
                    "categorical:/numeric:) on the dataset to present columns",
    "label_column": "add the column (empty cells are fine: unlabelled rows), or fix the task's "
                    "label:",
    "json": "write one complete JSON object per line; escape line breaks in strings as \\n",
    "json_value": "store very large numbers as strings, nest objects less deeply, and write "
                  "characters as valid Unicode (a \\ud800-\\udfff escape must come in a pair)",
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



def issue(issues: list[DataIssue], source: str | Path, line: int | None, field: str,
           message: str, hint: str) -> None:
    issues.append(DataIssue(str(source), line, field, message, HINTS[hint]))


def read_lines(path: Path, issues: list[DataIssue]) -> Lines | None:
    """The lines of a file (BOM stripped, CRLF accepted); None if it cannot be read."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "file not found"
        return issue(issues, path, None, "file", what, "path")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return issue(issues, path, None, "file", f"cannot read: {exc.strerror}", "path")
    chunks = data.removeprefix(codecs.BOM_UTF8).split(b"\n")
    if chunks[-1] == b"":
        chunks.pop()  # the newline ending the last line does not start another one
    lines: Lines = []
    for number, chunk in enumerate(chunks, 1):
        chunk = chunk.removesuffix(b"\r")
        try:
            lines.append((number, chunk.decode("utf-8")))
        except UnicodeDecodeError as exc:
            issue(issues, path, number, "encoding", f"invalid UTF-8 byte "
                   f"0x{chunk[exc.start]:02x} at column {exc.start + 1}", "utf8")
            lines.append((number, None))
    return lines


_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(text: str) -> tuple[Any, tuple[str, str] | None]:
    """One JSON value and None, or None and (why it cannot be used, the key of its hint in
    HINTS): not JSON, nested too deeply
    for the parser, an integer too long to convert, or a string holding a lone surrogate (valid
    JSON, but not Unicode text: tokenizers and UTF-8 writers fail on it later)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, (f"not valid JSON: {exc.msg} (column {exc.colno})", "json")
    except RecursionError:
        return None, ("nested too deeply to parse", "json_value")
    except ValueError as exc:  # e.g. Python's limit on the digits of an integer
        return None, (f"unusable JSON value: {exc}", "json_value")
    stack = [value]
    while stack:  # iterative: nesting that json accepted must not overflow our stack either
        item = stack.pop()
        if isinstance(item, str) and _SURROGATE.search(item):
            return None, ("a string holds a lone surrogate (\\ud800-\\udfff), which is not valid "
                          "Unicode", "json_value")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value, None
