"""Alert rules for ``polytask monitor``: YAML in, validated pydantic models out.

Errors carry ``file:line`` like a run config (config.read_yaml / validate_yaml), and rules
are checked against a model's tasks (names, labels, which operator fits which task type)
before any item is read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from polytask.yaml_io import _line_of, read_yaml, validate_yaml
from polytask.errors import ConfigError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Condition(_Strict):
    """One test on one task's prediction for an item; a rule's conditions must all hold.

    - ``equals``: the predicted label (classification), one of the predicted labels
      (multilabel), an entity type found (token classification), or the value (regression).
    - ``min_score``: the probability of ``equals`` (or, without ``equals``, of the predicted
      label) is at least this (classification, multilabel).
    - ``min`` / ``max``: the predicted value is at least / at most this (regression).
    """

    task: str
    equals: str | float | None = None
    min_score: float | None = Field(None, ge=0, le=1)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_test(self) -> Condition:
        if self.equals is None and self.min_score is None and self.min is None and self.max is None:
            raise ValueError("a condition needs at least one of equals, min_score, min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class WindowSpec(_Strict):
    """Tumbling windows: by time (``size``: "90s", "15m", "1h", "1d" or seconds, read from the
    item's ``field``), or by count (``items``: consecutive items of the stream)."""

    size: float | str | None = None
    items: int | None = Field(None, gt=0)
    field: str = Field("time", description="item field holding the timestamp (time windows)")

    @field_validator("size")
    @classmethod
    def _seconds(cls, value: float | str | None) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                raise ValueError(f"size {value!r}: write a number of seconds or e.g. 90s, 15m, 1h, 1d")
            value = float(match.group(1)) * _UNITS[match.group(2)]
        if value <= 0:
            raise ValueError("size must be positive")
        return float(value)

    @model_validator(mode="after")
    def _one_kind(self) -> WindowSpec:
        if (self.size is None) == (self.items is None):
            raise ValueError("a window has exactly one of size: (time) or items: (count)")
        return self

    @property
    def kind(self) -> Literal["time", "items"]:
        return "time" if self.size is not None else "items"


class Rule(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
    when: list[Condition] = Field(min_length=1)
    min_items: int = Field(1, ge=1, description="matching items in one window that fire the alert")
    window: WindowSpec | None = Field(None, description="default: the top-level window")


class RuleSet(_Strict):
    id_field: str = Field("id", description="item field used as its id in alerts (default: line)")
    window: WindowSpec | None = None
    out_of_order: Literal["error", "sort"] = Field(
        "error", description="time windows: an item older than the one before it is an error, "
                             "or the whole stream is sorted by time first (stable)")
    rules: list[Rule] = Field(min_length=1)
    _source: str = PrivateAttr("<rules>")
    _node: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _checks(self) -> RuleSet:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        missing = [rule.name for rule in self.rules if rule.window is None and self.window is None]
        if missing:
            raise ValueError(f"rule(s) {missing} have no window: set window: at the top or per rule")
        fields = {self.window_of(rule).field for rule in self.rules if self.window_of(rule).kind == "time"}
        if len(fields) > 1:
            raise ValueError(f"time windows read one timestamp field; the rules use {sorted(fields)}")
        return self

    def time_field(self) -> str | None:
        """The item field time windows read, None when every window counts items."""
        specs = [self.window_of(rule) for rule in self.rules]
        return next((spec.field for spec in specs if spec.kind == "time"), None)

    def window_of(self, rule: Rule) -> WindowSpec:
        return rule.window or self.window  # type: ignore[return-value]

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task for rule in self.rules for c in rule.when))

    def where(self, *loc: Any) -> str:
        """``file:line`` of a key of the rules file (for errors found after parsing)."""
        line = _line_of(self._node, loc)
        return f"{self._source}:{line}" if line else self._source


def load_rules(source: str | Path | dict[str, Any]) -> RuleSet:
    """Rules from a YAML file (errors with file:line) or a dict."""
    if isinstance(source, dict):
        return validate_yaml(RuleSet, source, "<rules>", None, "rules")
    path = Path(source)
    raw, node = read_yaml(path, "rules")
    rules = validate_yaml(RuleSet, raw, str(path), node, "rules")
    rules._source, rules._node = str(path), node
    return rules


def check_against_model(rules: RuleSet, tasks: dict[str, Any]) -> None:
    """Every rule names a task of the model, labels it knows, and operators its type has."""
    problems = []
    for r, rule in enumerate(rules.rules):
        for c, cond in enumerate(rule.when):
            loc = ("rules", r, "when", c)
            if cond.task not in tasks:
                problems.append(f"{rules.where(*loc, 'task')}: [rules.{r}.when.{c}.task] unknown task "
                                f"{cond.task!r}; the model has {sorted(tasks)}")
                continue
            task = tasks[cond.task]
            kind = task.config.type
            if cond.equals is not None and kind in ("classification", "multilabel") \
                    and str(cond.equals) not in task.labels:
                problems.append(f"{rules.where(*loc, 'equals')}: [rules.{r}.when.{c}.equals] task "
                                f"{cond.task!r} has no label {cond.equals!r}; labels: {task.labels}")
            if cond.equals is not None and kind == "token_classification":
                types = sorted({label.split("-", 1)[-1] for label in task.labels if label != "O"})
                if str(cond.equals) not in types:
                    problems.append(f"{rules.where(*loc, 'equals')}: [rules.{r}.when.{c}.equals] task "
                                    f"{cond.task!r} finds no entity type {cond.equals!r}; types: {types}")
            if cond.min_score is not None and kind not in ("classification", "multilabel"):
                problems.append(f"{rules.where(*loc, 'min_score')}: [rules.{r}.when.{c}.min_score] "
                                f"task {cond.task!r} is {kind}: min_score needs classification or "
                                "multilabel (use min/max for regression values)")
            if (cond.min is not None or cond.max is not None) and kind != "regression":
                key = "min" if cond.min is not None else "max"
                problems.append(f"{rules.where(*loc, key)}: [rules.{r}.when.{c}.{key}] task "
                                f"{cond.task!r} is {kind}: min/max compare regression values "
                                "(use equals/min_score for labels)")
            if cond.min_score is not None and cond.equals is None and kind == "multilabel":
                problems.append(f"{rules.where(*loc, 'min_score')}: [rules.{r}.when.{c}] multilabel "
                                "task: say which label's score with equals:")
    if problems:
        raise ConfigError("rules do not fit the model:\n  - " + "\n  - ".join(problems))

