"""Data validation: read every split, parse every label with its task, report all problems.

Nothing trains on data that failed validation, and a user sees every problem of every file in
one DataValidationError instead of fixing them one crash at a time.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import polytask.tasks  # noqa: F401 - importing the package registers every task type
from polytask.config import DatasetConfig, RunConfig
from polytask.data.readers import label_file, read_split
from polytask.data.records import Record
from polytask.errors import DataIssue, DataValidationError
from polytask.tasks.base import Task, build_task

log = logging.getLogger(__name__)

Splits = dict[str, dict[str, list[Record]]]


def validate(config: RunConfig, splits: Sequence[str] = ("train", "dev", "test")) -> Splits:
    """Records of every configured split, as ``{dataset name: {split: records}}``.

    Raises DataValidationError with every problem found (sorted by file, then line) if any.
    Labels seen in dev/test but never in train are only logged: the metrics count them as
    mistakes, which is the honest score.
    """
    issues: list[DataIssue] = []
    data: Splits = {}
    for name, dataset in config.datasets.items():
        tasks = [build_task(task_config) for task_config in config.tasks_of(name)]
        data[name] = _validate_dataset(dataset, tasks, splits, issues)
    if issues:
        raise DataValidationError(sorted(issues, key=lambda i: (i.file, i.line or 0)))
    return data


def _validate_dataset(dataset: DatasetConfig, tasks: list[Task], splits: Sequence[str],
                      issues: list[DataIssue]) -> dict[str, list[Record]]:
    labels = [task.config.label for task in tasks]
    # Token-level tasks need words; a csv/jsonl dataset without tokens: gets whitespace words.
    split_words = dataset.tokens is None and any(task.needs_words for task in tasks)
    records: dict[str, list[Record]] = {}
    values: dict[str, dict[str, list[Any]]] = {}  # split -> task name -> parsed values
    for split in splits:
        if dataset.split_path(split) is None:
            continue
        records[split], found = read_split(dataset, split, labels, split_words=split_words)
        issues.extend(found)
        values[split] = {task.name: _parse_all(dataset, task, records[split], issues)
                         for task in tasks}
        if split == "train" and records[split]:
            issues.extend(_unlabelled(dataset, tasks, records[split], found))
    _warn_unseen_labels(tasks, values)
    return records


def _parse_all(dataset: DatasetConfig, task: Task, records: list[Record],
               issues: list[DataIssue]) -> list[Any]:
    """Each record's parsed value for ``task`` (None when unlabelled or invalid)."""
    label = task.config.label
    if task.config.labels is not None:
        hint = f"fix the row, or add the label to labels: of task {task.name!r} in the config"
    else:
        hint = f"fix the row's {label!r} value"
    values = []
    for record in records:
        value, problem = task.parse(record.fields.get(label), record.words)
        if problem is not None:
            issues.append(DataIssue(label_file(dataset, record, label), record.line, label,
                                    f"task {task.name!r}: {problem}", hint))
        values.append(value)
    return values


def _unlabelled(dataset: DatasetConfig, tasks: list[Task], records: list[Record],
                found: list[DataIssue]) -> list[DataIssue]:
    """A task without a single label in train cannot learn. Invalid labels and missing columns
    are reported already, so only a column that is present but empty everywhere is flagged."""
    reported = {issue.field for issue in found}
    return [DataIssue(str(dataset.train), None, task.config.label,
                      f"task {task.name!r} has no labelled records in train",
                      f"fill in column {task.config.label!r} for some rows, or point the "
                      "task's label: at the right column")
            for task in tasks
            if task.config.label not in reported
            and all(record.fields.get(task.config.label) is None for record in records)]


def _label_counts(values: list[Any]) -> Counter[str]:
    """How often each label occurs; tag lists and label lists count each element."""
    counts: Counter[str] = Counter()
    for value in values:
        if isinstance(value, str):
            counts[value] += 1
        elif isinstance(value, (list, tuple)):
            counts.update(item for item in value if isinstance(item, str))
    return counts


def _warn_unseen_labels(tasks: list[Task], values: dict[str, dict[str, list[Any]]]) -> None:
    if "train" not in values:
        return
    for task in tasks:
        if task.free_text:
            continue
        seen = _label_counts(values["train"][task.name])
        if not seen:
            continue  # numeric targets, or no train labels (reported as an error)
        for split, by_task in values.items():
            counts = _label_counts(by_task[task.name])
            unseen = sorted((label, n) for label, n in counts.items() if label not in seen)
            if split != "train" and unseen:
                log.warning("task %r: %s has labels never seen in train (the metrics count "
                            "them as mistakes): %s", task.name, split,
                            ", ".join(f"{label} ({n})" for label, n in unseen))


def summary(config: RunConfig, data: Splits) -> dict[str, dict[str, dict[str, Any]]]:
    """What ``validate-data`` prints: per dataset and split, the rows read and, per task, the
    rows it can use (a row without that task's label is skipped for it: a partial label)."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for name, splits in data.items():
        tasks = config.tasks_of(name)
        result[name] = {split: {"rows": len(records), "usable": {
            task.name: sum(r.fields.get(task.label) is not None for r in records) for task in tasks}}
            for split, records in splits.items()}
    return result
