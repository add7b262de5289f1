"""Tabular inputs: feature cells -> clean values -> ids, with a vocabulary fit on train.

A tabular dataset names its input columns with ``categorical:`` (IDs, categories) and
``numeric:`` (numbers) instead of a text column. Each row becomes a Record whose
``features`` map every column to a clean value: a string for categorical columns, a float for
numeric ones, ``None`` for a missing value (an empty cell or an absent JSON key). Missing
values are allowed and counted (``fit`` logs them per column); a cell that cannot be a value
(a word in a numeric column, NaN, a JSON list) is a DataIssue with file:line.

``FieldVocabulary`` plays the tokenizer's part for ``model.encoder: tabular``: one "token"
per field, so every row has the same length ``1 + fields`` (a row token first, like [CLS]),
and the rest of the pipeline (collate, pooling, sharing strategies, heads) is unchanged.

- Categorical columns: each train value seen ``min_count`` times or more gets an id; rarer
  ones, values never seen in train and missing values share the column's unknown id.
- Numeric columns are bucketised at their train quantiles (``numeric_buckets``): embedding a
  bucket needs no scaling and is robust to outliers; missing values get the unknown id.

Ids are global (one offset per field), so one embedding table serves every field.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polytask.atomic import write_text
from polytask.data.records import Record
from polytask.errors import DataIssue, DataValidationError, ModelDirError

log = logging.getLogger(__name__)

VOCAB_FILE = "tabular_vocab.json"
PAD_ID, ROW_ID = 0, 1  # ids before the first field's
_HINTS = {
    "numeric": "write a plain finite number (e.g. 12.5), or leave the cell empty for a missing value",
    "categorical": "write the category as a string or a number, or leave it empty for a missing value",
    "object": 'write each input as a JSON object of feature columns, e.g. {"user_id": "u1", "price": 3.5}',
}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _category(value: Any) -> str | None:
    """A categorical cell as text (JSON 3 and 3.0 and csv "3" are the same category)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_features(source: str, line: int, cells: Mapping[str, Any], categorical: list[str],
                   numeric: list[str], issues: list[DataIssue]) -> dict[str, Any] | None:
    """Clean values of one row's feature columns; None (and an issue per bad cell) if any is bad."""
    values: dict[str, Any] = {}
    kinds = [(c, "categorical", _category) for c in categorical] + [(c, "numeric", _number) for c in numeric]
    for column, kind, clean in kinds:
        raw = cells.get(column)
        values[column] = None if _blank(raw) else clean(raw)
        if not _blank(raw) and values[column] is None:
            problem = (f"categorical column {column!r} holds a {type(raw).__name__}, not a value"
                       if kind == "categorical" else
                       f"numeric column {column!r} must be a finite number, got {raw!r}")
            issues.append(DataIssue(source, line, column, problem, _HINTS[kind]))
    bad = any(values[c] is None and not _blank(cells.get(c)) for c in [*categorical, *numeric])
    return None if bad else values


@dataclass
class FieldSpec:
    """One input column: its kind, its known values (or bucket edges) and its first id."""

    name: str
    kind: str  # "categorical" | "numeric"
    values: list[str] = field(default_factory=list)
    edges: list[float] = field(default_factory=list)
    offset: int = 0  # id of the unknown/missing value; known values follow

    def __post_init__(self) -> None:
        self.index = {value: i for i, value in enumerate(self.values)}

    @property
    def size(self) -> int:
        return 1 + (len(self.values) if self.kind == "categorical" else len(self.edges) + 1)

    def id_of(self, value: Any) -> int:
        if value is None:
            return self.offset
        if self.kind == "numeric":
            return self.offset + 1 + bisect.bisect_right(self.edges, float(value))
        position = self.index.get(value)
        return self.offset if position is None else self.offset + 1 + position


class FieldVocabulary:
    """The tokenizer of tabular models: a row's features -> ``[ROW, id per field]``."""

    pad_token_id = PAD_ID
    cls_token_id = ROW_ID
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, fields: list[FieldSpec]) -> None:
        offset = ROW_ID + 1
        for spec in fields:
            spec.offset, offset = offset, offset + spec.size
        self.fields = fields
        self.vocab_size = offset

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.fields if f.kind == "categorical"]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.fields if f.kind == "numeric"]

    def __len__(self) -> int:
        return self.vocab_size

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, records: Iterable[Record], categorical: list[str], numeric: list[str],
            buckets: int = 10, min_count: int = 1) -> FieldVocabulary:
        """Known values and bucket edges of every column, from the train records."""
        rows = [r.features or {} for r in records]
        fields = []
        for name in categorical:
            counts = Counter(row.get(name) for row in rows)
            missing = counts.pop(None, 0)
            kept = sorted(value for value, n in counts.items() if n >= min_count)
            log.info("feature %s: %d values in train, %d kept (min_count %d), %d missing",
                     name, len(counts), len(kept), min_count, missing)
            fields.append(FieldSpec(name, "categorical", values=kept))
        for name in numeric:
            numbers = np.array([row[name] for row in rows if row.get(name) is not None], dtype=float)
            cuts = np.quantile(numbers, np.linspace(0, 1, buckets + 1)[1:-1]) if len(numbers) else []
            edges = sorted({float(c) for c in cuts})
            log.info("feature %s: %d buckets from %d train values, %d missing", name,
                     len(edges) + 1, len(numbers), len(rows) - len(numbers))
            fields.append(FieldSpec(name, "numeric", edges=edges))
        return cls(fields)

    # ------------------------------------------------------------------ encoding
    def encode(self, features: Mapping[str, Any]) -> list[int]:
        return [ROW_ID, *(spec.id_of(features.get(spec.name)) for spec in self.fields)]

    def encode_records(self, records: list[Record]) -> list[tuple[list[int], None, list]]:
        """What ``data.features.tokenize`` returns for text: (ids, no type ids, no word ids)."""
        without = [r for r in records if r.features is None]
        if without:
            columns = ", ".join(self.categorical + self.numeric)
            raise DataValidationError([
                DataIssue(r.source, r.line, "features", "this is a tabular model and the input "
                          "has no feature columns", f"give each input the columns {columns}")
                for r in without[:50]])
        return [(self.encode(r.features or {}), None, []) for r in records]

    def parse_row(self, source: str, line: int, row: Any, issues: list[DataIssue]) -> Record | None:
        """A prediction input (a JSON object of feature columns) as a Record; None if bad."""
        if not isinstance(row, Mapping):
            issues.append(DataIssue(source, line, "input", f"a {type(row).__name__}, not an object "
                                    "of feature columns", _HINTS["object"]))
            return None
        features = parse_features(source, line, row, self.categorical, self.numeric, issues)
        return None if features is None else Record(source, line, features=features, fields=dict(row))

    def records_from_rows(self, rows: list[Any], source: str = "<inputs>") -> list[Record]:
        issues: list[DataIssue] = []
        records = [self.parse_row(source, i, row, issues) for i, row in enumerate(rows, 1)]
        if issues:
            raise DataValidationError(issues)
        return [r for r in records if r is not None]

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {"fields": [{"name": f.name, "kind": f.kind, "values": f.values, "edges": f.edges}
                           for f in self.fields]}

    def save_pretrained(self, directory: str | Path) -> tuple[str]:
        path = Path(directory) / VOCAB_FILE
        write_text(path, json.dumps(self.to_dict(), ensure_ascii=False))
        return (str(path),)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FieldVocabulary:
        path = Path(directory) / VOCAB_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            fields = [FieldSpec(str(f["name"]), f["kind"], [str(v) for v in f["values"]],
                                [float(e) for e in f["edges"]]) for f in data["fields"]]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ModelDirError(f"{path}: unreadable tabular vocabulary ({exc}); is this a "
                                "model saved by polytask with model.encoder: tabular?") from None
        if not fields or any(f.kind not in ("categorical", "numeric") for f in fields):
            raise ModelDirError(f"{path}: the vocabulary lists no fields or an unknown kind")
        return cls(fields)
