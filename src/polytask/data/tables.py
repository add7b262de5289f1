"""Tables: parquet files, arrow files, ``save_to_disk`` folders (read with the ``datasets``
library) and, from Python, an in-memory ``datasets.Dataset`` or pandas DataFrame per split.

Each row becomes a Record like a JSON object would (data/cells.py); problems name the
source and the 0-based row (``train.parquet row:12`` is ``ds[12]``). ``ClassLabel`` columns,
and lists of them (tags), give their label names instead of ids.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polytask.config import DatasetConfig, HubSplit
from polytask.data.cells import build_record
from polytask.data.reading import issue
from polytask.data.records import Record
from polytask.errors import DataIssue

_INSTALL = "install the Hugging Face extra: pip install 'polytask[hf]'"


def read_table_file(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                    issues: list[DataIssue]) -> list[Record]:
    """A parquet file, an arrow file or a ``save_to_disk`` folder."""
    if not path.exists():
        issue(issues, path, None, "file", "file not found", "path")
        return []
    table = _load(path, issues)
    return [] if table is None else read_memory(table, str(path), dataset, labels, split_words, issues)


def read_memory(table: Any, source: str, dataset: DatasetConfig, labels: list[str],
                split_words: bool, issues: list[DataIssue]) -> list[Record]:
    """An in-memory ``datasets.Dataset`` or pandas DataFrame, or a split of a ``hub:`` dataset."""
    if isinstance(table, HubSplit):
        source, table = str(table), _load_hub(table, issues)
        if table is None:
            return []
    columns = list(getattr(table, "column_names", None) or getattr(table, "columns", []))
    missing = [c for c in dataset.input_columns() if c not in columns]
    for column in [*missing, *(c for c in labels if c not in columns)]:
        kind, hint = ("input", "input_column") if column in missing else ("label", "label_column")
        issue(issues, source, None, column, f"missing {kind} column {column!r}; columns present: "
               f"{', '.join(map(repr, columns))}", hint)
    if missing:
        return []
    names = _class_names(table, labels)
    records = []
    for row_number, row in enumerate(_rows(table)):
        cells = {key: _named(_plain(value), names.get(key)) for key, value in row.items()}
        if record := build_record(f"{source} row", row_number, cells, dataset, labels,
                                  split_words, issues):
            records.append(record)
    return records


def _load(path: Path, issues: list[DataIssue]) -> Any:
    try:
        import datasets
        import pyarrow.parquet as parquet
    except ImportError:
        issues.append(DataIssue(str(path), None, "file", "reading parquet/arrow needs the "
                                "datasets and pyarrow libraries", _INSTALL))
        return None
    try:
        if path.is_dir():
            if (path / "dataset_dict.json").is_file():
                splits = sorted(p.name for p in path.iterdir() if p.is_dir())
                issues.append(DataIssue(str(path), None, "file", "a DatasetDict folder (splits "
                                        f"{', '.join(splits)}), not one split", "point train:/"
                                        f"validation:/test: at its split folders, e.g. {path / 'train'}"))
                return None
            return datasets.load_from_disk(str(path))
        if path.suffix.lower() == ".parquet":
            return datasets.Dataset(parquet.read_table(path))
        return datasets.Dataset.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any library error is a problem of this file
        issues.append(DataIssue(str(path), None, "file", f"cannot read it as a Hugging Face "
                                f"dataset / parquet / arrow file: {type(exc).__name__}: {exc}",
                                "write it with datasets (save_to_disk, to_parquet) or pyarrow, or "
                                "set format: to the file's real format"))
        return None


def _load_hub(split: HubSplit, issues: list[DataIssue]) -> Any:
    """``datasets.load_dataset`` (the config allowed the download); a failure is an issue."""
    try:
        import datasets

        return datasets.load_dataset(split.name, split.config, split=split.split)
    except ImportError:
        issues.append(DataIssue(str(split), None, "hub", "hub: needs the datasets library", _INSTALL))
    except Exception as exc:  # noqa: BLE001 - no network, unknown name or split: all reported
        issues.append(DataIssue(str(split), None, "hub", f"cannot load it: {type(exc).__name__}: "
                                f"{exc}", "check the name, hub_config: and split names, and the "
                                "network; or save the dataset locally and point the splits at it"))
    return None


def _rows(table: Any) -> Iterator[dict[str, Any]]:
    if type(table).__module__.startswith("pandas"):
        yield from table.to_dict(orient="records")
    else:
        yield from table


def _class_names(table: Any, labels: list[str]) -> dict[str, list[str]]:
    """``{column: names}`` of the ClassLabel label columns (also lists of ClassLabel)."""
    features = getattr(table, "features", None) or {}
    names = {}
    for column in labels:
        feature = features.get(column)
        feature = getattr(feature, "feature", feature)  # List(ClassLabel) / Sequence(ClassLabel)
        if type(feature).__name__ == "ClassLabel":
            names[column] = list(feature.names)
    return names


def _named(value: Any, names: list[str] | None) -> Any:
    if names is None:
        return value
    if isinstance(value, list):
        return [_named(item, names) for item in value]
    if value == -1:
        return None  # the datasets convention for "no label" (e.g. GLUE test splits)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return value  # out of range: reported by the task


def _plain(value: Any) -> Any:
    """Python values from numpy/pandas ones; NaN (pandas' missing value) -> None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
