"""Readers: one per ``DatasetConfig.format``, each turning a split's file(s) into Records.

Readers never raise on bad data: every problem becomes a DataIssue (file, 1-based line or
row, field, message, hint) and reading goes on, so one run reports all of a file's problems.
Formats, one file each: jsonl here; csv/tsv in delimited.py; parquet, arrow, save_to_disk
folders and in-memory tables in tables.py; CoNLL and the intent_slot folder in
word_readers.py. What they share: reading.py (lines, issues with hints), cells.py (a Record
from a row's cells); label ids -> names (labels_file:) in label_names.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polytask.config import DatasetConfig, canonical_split
from polytask.data.cells import build_record, json_kind
from polytask.data.delimited import read_delimited
from polytask.data.label_names import name_label_ids
from polytask.data.reading import issue, parse_json, read_lines
from polytask.data.records import Record
from polytask.data.tables import read_memory, read_table_file
from polytask.data.word_readers import INTENT_SLOT_FILES, read_conll, read_intent_slot
from polytask.errors import DataIssue
from polytask.registry import family

_Reader = Callable[[Path, DatasetConfig, list[str], bool, list[DataIssue]], list[Record]]
#: Data formats by name (``polytask list``): ``format:`` of a dataset picks one.
READERS = family("data format")


def read_split(dataset: DatasetConfig, split: str, label_columns: list[str], *,
               split_words: bool = False) -> tuple[list[Record], list[DataIssue]]:
    """Read one split ("train", "dev"/"validation" or "test"): the usable records and every
    problem found.

    ``label_columns`` are the ``label:`` values of the tasks on this dataset. With
    ``split_words`` a csv/tsv/jsonl dataset without ``tokens:`` gets ``words = split_words(text)``
    (whitespace, and each CJK character a word: records.split_words),
    which token-level tasks need. A split without a configured path reads as nothing.
    """
    split = canonical_split(split)
    path = dataset.split_path(split)
    if path is None:
        return [], []
    if dataset.is_tabular and split_words:
        return [], [DataIssue(str(path), None, "tasks", "a token-level task reads words, and a "
                              "tabular dataset (categorical:/numeric:) has none",
                              "use sequence-level tasks (classification, regression...) on it")]
    issues: list[DataIssue] = []
    labels = list(dict.fromkeys(label_columns))
    if split not in dataset.tables and str(path).startswith("<in-memory"):
        return [], [DataIssue(str(path), None, "file", "this split was an in-memory table passed "
                              "from Python, and a config file cannot hold it", "pass the config as "
                              "a dict with the Dataset/DataFrame again (polytask.evaluate(model, "
                              "config=...)), or save the split (to_parquet) and name the file")]
    if split in dataset.tables:
        records = read_memory(dataset.tables[split], str(path), dataset, labels, split_words, issues)
    else:
        records = READERS.get(str(dataset.format))(Path(path), dataset, labels, split_words, issues)
    if not records and not issues:
        issue(issues, path, None, "file", "no records: the file is empty (or holds only a "
               "header or blank lines)", "no_records")
    name_label_ids(dataset, records, labels, issues)
    return records, issues


def label_file(dataset: DatasetConfig, record: Record, label: str) -> str:
    """The file holding ``label`` for ``record``: intent_slot keeps each field in its own file."""
    if dataset.format == "intent_slot" and label in INTENT_SLOT_FILES:
        return str(Path(record.source) / INTENT_SLOT_FILES[label])
    return record.source


def _read_jsonl(path: Path, dataset: DatasetConfig, labels: list[str], split_words: bool,
                issues: list[DataIssue]) -> list[Record]:
    records = []
    for line, text in read_lines(path, issues) or []:
        if text is None or not text.strip():
            continue
        obj, problem = parse_json(text)
        if problem is not None:
            issue(issues, path, line, "json", *problem)
            continue
        if not isinstance(obj, dict):
            issue(issues, path, line, "json", f"a JSON {json_kind(obj)}, not an object", "object")
        elif record := build_record(str(path), line, obj, dataset, labels, split_words, issues):
            records.append(record)
    return records


for _name, _reader in {"csv": read_delimited, "tsv": read_delimited, "jsonl": _read_jsonl,
                       "conll": read_conll, "intent_slot": read_intent_slot,
                       "parquet": read_table_file, "arrow": read_table_file}.items():
    READERS.register(_name)(_reader)
