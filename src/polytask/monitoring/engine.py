"""Evaluating alert rules over a stream of items that carry predictions.

An alert fires for a (rule, window) pair when at least ``min_items`` items of that window
satisfy every condition of the rule. One alert per such pair lists every matching item of
the window; ``fired_by`` is the item whose arrival made the count reach ``min_items`` (where
a live monitor would have raised it), and alerts come out in that order (ties: rule order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polytask.errors import DataIssue, DataValidationError
from polytask.monitoring.conditions import ConditionError, holds
from polytask.monitoring.rules import Rule, RuleSet, load_rules
from polytask.monitoring.windows import parse_time, window_bounds, window_index

HINTS = {
    "predictions": 'give each line a "predictions" object (the output of `polytask predict`), '
                   "or pass --model to predict them",
    "time": "write the time as seconds since the epoch or an ISO 8601 string "
            '(e.g. "2024-05-01T09:30:00Z")',
    "order": "sort the stream by time, or set out_of_order: sort in the rules file",
    "condition": "check that the rule's operator fits the task (equals/min_score: labels, "
                 "min/max: regression values)",
}


@dataclass
class _Window:
    total: int = 0
    matches: list[Any] = field(default_factory=list)
    fired_by: tuple[int, Any] | None = None  # (stream position, id) of the min_items-th match


class Monitor:
    """Alert rules evaluated over items: ``Monitor("rules.yaml").evaluate(items)``."""

    def __init__(self, rules: RuleSet | str | Path | dict[str, Any]) -> None:
        self.rules = rules if isinstance(rules, RuleSet) else load_rules(rules)

    def evaluate(self, items: list[dict[str, Any]], source: str = "<items>",
                 lines: list[int] | None = None) -> list[dict[str, Any]]:
        """Alerts for ``items`` (dicts with "predictions" and, for time windows, a timestamp).
        ``lines`` are the items' line numbers in ``source`` (default 1, 2, ...), used in errors.
        Every problem of the stream is raised at once as a DataValidationError."""
        lines = lines or list(range(1, len(items) + 1))
        issues: list[DataIssue] = []
        times = self._times(items, source, lines, issues)
        order = self._order(items, times, source, lines, issues)
        matches = self._matches(items, source, lines, issues)
        if issues:
            raise DataValidationError(issues)
        alerts = []
        for r, rule in enumerate(self.rules.rules):
            for index, window in self._windows(rule, items, lines, order, times, matches, r).items():
                if len(window.matches) >= rule.min_items:
                    position, fired_by = window.fired_by  # type: ignore[misc]
                    alerts.append((position, r, {
                        "rule": rule.name, "window": window_bounds(self.rules.window_of(rule), index),
                        "count": len(window.matches), "min_items": rule.min_items,
                        "items_in_window": window.total, "ids": window.matches, "fired_by": fired_by}))
        return [alert for _, _, alert in sorted(alerts, key=lambda a: (a[0], a[1]))]

    # ------------------------------------------------------------------ steps
    def _times(self, items, source, lines, issues) -> list[float | None] | None:
        """The items' timestamps (None where unreadable), or None without time windows."""
        name = self.rules.time_field()
        if name is None:
            return None
        column: list[float | None] = []
        for item, line in zip(items, lines):
            try:
                if name not in item:
                    raise ValueError(f"no {name!r} timestamp (the rules use time windows on it)")
                column.append(parse_time(item[name]))
            except ValueError as exc:
                column.append(None)
                issues.append(DataIssue(source, line, name, str(exc), HINTS["time"]))
        return column

    def _order(self, items, times, source, lines, issues) -> list[int]:
        """The stream order: as read (an item older than the one before it is an error), or
        with out_of_order: sort, sorted by time (stable, so ties keep their order)."""
        order = list(range(len(items)))
        if times is None:
            return order
        if self.rules.out_of_order == "sort":
            return sorted(order, key=lambda i: times[i] if times[i] is not None else float("-inf"))
        latest: tuple[float, int] | None = None
        for i, t in enumerate(times):
            if t is None:
                continue
            if latest is not None and t < latest[0]:
                name = self.rules.time_field()
                issues.append(DataIssue(source, lines[i], str(name), f"out of order: {items[i][name]!r} "
                                        f"is earlier than the timestamp on line {latest[1]}", HINTS["order"]))
            else:
                latest = (t, lines[i])
        return order

    def _matches(self, items, source, lines, issues) -> list[list[bool]]:
        """matches[r][i]: item i satisfies every condition of rule r."""
        table = [[False] * len(items) for _ in self.rules.rules]
        for i, (item, line) in enumerate(zip(items, lines)):
            predictions = item.get("predictions")
            if not isinstance(predictions, dict):
                issues.append(DataIssue(source, line, "predictions", 'no "predictions" object',
                                        HINTS["predictions"]))
                continue
            for r, rule in enumerate(self.rules.rules):
                try:
                    # every condition is tested (no short cut), so a malformed prediction is
                    # reported whatever the other conditions say
                    table[r][i] = all([holds(c, predictions) for c in rule.when])
                except ConditionError as exc:
                    issues.append(DataIssue(source, line, "predictions", f"rule {rule.name!r}: {exc}",
                                            HINTS["condition"]))
        return table

    def _windows(self, rule: Rule, items, lines, order, times, matches, r: int) -> dict[int, _Window]:
        spec = self.rules.window_of(rule)
        windows: dict[int, _Window] = {}
        for position, i in enumerate(order):
            time = times[i] if times is not None else None
            window = windows.setdefault(window_index(spec, time, position), _Window())
            window.total += 1
            if matches[r][i]:
                item_id = items[i].get(self.rules.id_field, lines[i])
                window.matches.append(item_id)
                if len(window.matches) == rule.min_items:
                    window.fired_by = (position, item_id)
        return windows
