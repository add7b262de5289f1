"""``polytask monitor``: read a JSONL stream, predict (or take its predictions), evaluate the
rules, write alerts as JSONL (atomically: the file holds all alerts or is left as it was)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polytask.atomic import write_text
from polytask.data.jsonl import json_lines
from polytask.errors import DataIssue, DataValidationError
from polytask.monitoring.engine import HINTS, Monitor
from polytask.monitoring.rules import RuleSet, check_against_model, load_rules


def read_stream(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """JSON objects of a JSONL file and their line numbers; all bad lines raised at once."""
    items, lines, issues = [], [], []
    for number, obj in json_lines(path, issues, '{"id": "1", "predictions": {...}}'):
        if not isinstance(obj, dict):
            issues.append(DataIssue(str(path), number, "json", "not a JSON object", HINTS["predictions"]))
            continue
        items.append(obj)
        lines.append(number)
    if issues:
        raise DataValidationError(issues)
    return items, lines


def predict_stream(model_dir: str | Path, rules: RuleSet, path: Path, batch_size: int = 64,
                   ) -> tuple[list[dict[str, Any]], list[int]]:
    """The stream's items with "predictions" from the model (the tasks the rules read)."""
    from polytask.inference import load_model, predict_records, read_inputs

    model = load_model(model_dir)
    check_against_model(rules, model.tasks)
    records = read_inputs(path, model.tokenizer)  # a tabular model reads feature columns
    predictions = predict_records(model, records, rules.tasks(), batch_size)
    return [{**r.fields, "predictions": p} for r, p in zip(records, predictions)], [r.line for r in records]


def run_monitor(rules: RuleSet | str | Path | dict[str, Any], input: str | Path,
                output: str | Path | None = None, model_dir: str | Path | None = None,
                batch_size: int = 64) -> list[dict[str, Any]]:
    """Alerts of ``rules`` over the JSONL stream ``input``; with ``model_dir`` the model
    predicts each line's "text"/"tokens", without it each line must carry "predictions"
    (the output of ``polytask predict``). Written to ``output`` as JSONL when given."""
    rule_set = rules if isinstance(rules, RuleSet) else load_rules(rules)
    path = Path(input)
    if model_dir is not None:
        items, lines = predict_stream(model_dir, rule_set, path, batch_size)
    else:
        items, lines = read_stream(path)
    alerts = Monitor(rule_set).evaluate(items, str(path), lines)
    if output is not None:
        write_text(Path(output), "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in alerts))
    return alerts
