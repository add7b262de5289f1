"""csv / tsv: with a header row or without one (``header: false`` + ``columns:`` or 0-based
positions in ``text:``/``label:``), with csv quoting or none (``quoting: none``).

A reader never merges or drops rows without saying so. With csv quoting, a cell that starts
with ``"`` runs to the next ``"``, wherever that is; an unbalanced quote (common in TSV
corpora: STS-B has hundreds) silently swallows the rows after it. A quoted cell that spans
lines is therefore checked: when its first line, or a line it absorbs whole, is a complete row
on its own, the merge is reported at its first line (tsv: an issue and the row is skipped;
csv, where cells with line breaks are legitimate: a warning) with ``quoting: none`` as the fix.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path

from polytask.config import DatasetConfig
from polytask.data.cells import build_record
from polytask.data.reading import Lines, issue, read_lines
from polytask.data.records import Record
from polytask.errors import DataIssue

log = logging.getLogger(__name__)
#: (first line, cells, the physical lines the row was read from)
Row = tuple[int, list[str], list[str]]


def read_delimited(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                   issues: list[DataIssue]) -> list[Record]:
    delimiter = "\t" if dataset.format == "tsv" else ","
    lines = read_lines(path, issues) or []
    rows = (_plain_rows(lines, delimiter) if dataset.quoting == "none"
            else _csv_rows(path, lines, delimiter, issues))
    first = next(rows, None)
    if first is None:
        return []
    header, rows = _header(first, rows, dataset)
    if not _check_header(path, first[0], header, dataset, labels, issues):
        return []
    records = []
    for line, row, span in rows:
        if len(row) != len(header):
            issue(issues, path, line, "row", f"{len(row)} cells but the header has {len(header)}"
                   if dataset.header else f"{len(row)} cells but columns: names {len(header)}"
                   if dataset.columns else f"{len(row)} cells but line {first[0]} has "
                   f"{len(header)}", "cells")
        elif _merged(path, line, span, delimiter, len(header), dataset.format == "tsv", issues):
            continue
        elif record := build_record(str(path), line, _cells(header, row), dataset, labels,
                                    split_words, issues):
            records.append(record)
    return records


def _header(first: Row, rows: Iterator[Row], dataset: DatasetConfig) -> tuple[list[str], Iterator[Row]]:
    """The column names, and the data rows (the first row is data when there is no header)."""
    if dataset.header:
        return [name.strip() for name in first[1]], rows
    names = dataset.columns or [str(i) for i in range(len(first[1]))]
    return names, _chain(first, rows)


def _chain(first: Row, rows: Iterator[Row]) -> Iterator[Row]:
    yield first
    yield from rows


def _cells(header: list[str], row: list[str]) -> dict[str, str]:
    """Cells by column name and by 0-based position (``text: 0`` reads the first column)."""
    return {**{str(i): cell for i, cell in enumerate(row)}, **dict(zip(header, row))}


def _plain_rows(lines: Lines, delimiter: str) -> Iterator[Row]:
    """``quoting: none``: one row per line, split at every delimiter; quotes are text."""
    for number, text in lines:
        if text is not None and text.strip():
            yield number, text.split(delimiter), [text]


def _csv_rows(path: Path, lines: Lines, delimiter: str, issues: list[DataIssue]) -> Iterator[Row]:
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
            yield good[start][0], row, [text for _, text in good[start:reader.line_num]]


def _merged(path: Path, line: int, span: list[str], delimiter: str, width: int, strict: bool,
            issues: list[DataIssue]) -> bool:
    """Report a quoted cell that swallowed whole rows; True if the row is to be skipped."""
    if len(span) < 2 or width < 2:
        return False
    complete = [i for i, text in enumerate(span[:-1]) if len(text.split(delimiter)) >= width]
    if not complete:
        return False
    end = line + len(span) - 1
    message = (f'a " opens a quoted cell on this line that runs to line {end}: {len(span)} lines '
               f"read as one row (line {line + complete[0]} alone is a complete row)")
    if strict:
        issue(issues, path, line, "row", message, "quoting")
        return True
    log.warning("%s:%d: %s; kept as one row (set quoting: none if quotes are text)", path, line,
                message)
    return False


def _check_header(path: Path, line: int, header: list[str], dataset: DatasetConfig,
                  labels: list[str], issues: list[DataIssue]) -> bool:
    """Report missing columns once, on the header line; False if an input column is missing."""
    inputs = dataset.input_columns()
    known = [*header, *(str(i) for i in range(len(header)))]
    present = ", ".join(repr(name) for name in header)
    if not dataset.header:
        present += f" (no header: {len(header)} columns, positions 0-{len(header) - 1})"
    for column, kind, hint in [*((c, "input", "input_column") for c in inputs),
                               *((c, "label", "label_column") for c in labels)]:
        if column not in known:
            issue(issues, path, line, column, f"missing {kind} column {column!r}; columns "
                   f"present: {present}", hint)
    return all(column in known for column in inputs)
