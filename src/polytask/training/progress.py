"""Progress bar and the final per-task table (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from polytask.tasks.base import Task

console = Console(stderr=True)


class ProgressBar:
    def __init__(self, total: int, start: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=console,
            transient=True, disable=not enabled,
        )
        self.task_id = self.progress.add_task("train", total=total, completed=start, losses="")

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def advance(self, losses: dict[str, float]) -> None:
        text = " ".join(f"{name}={value:.3f}" for name, value in losses.items())
        self.progress.update(self.task_id, advance=1, losses=text)


def print_table(tasks: list[Task], results: dict[str, Any], out: Console | None = None) -> None:
    """One row per task and metric, one column per evaluated split."""
    splits = [s for s in ("dev", "test") if s in results]
    if not splits:
        return
    table = Table(title="polytask results")
    table.add_column("task")
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    keys = sorted({k for s in splits for k, v in results[s].items() if isinstance(v, (int, float))})
    for key in keys:
        name, metric = key.split("/", 1)
        table.add_row(name, metric, *[_fmt(results[s].get(key)) for s in splits])
    (out or Console()).print(table)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"
