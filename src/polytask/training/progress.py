"""Training progress: a rich bar on a terminal, else (cluster logs, nohup, a pipe) a log line
every ``train.log_every`` steps; and the final per-task table (rich)."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from polytask.tasks.base import Task

console = Console(stderr=True)
log = logging.getLogger(__name__)


class ProgressBar:
    """``advance`` once per optimizer step. Where the bar cannot be seen (its console is not a
    terminal) every ``log_every``-th step logs step, epoch, each task's mean loss since the last
    line, the learning rate, examples/s over that stretch and the ETA at the run's mean pace."""

    def __init__(self, total: int, start: int, enabled: bool = True, log_every: int = 50,
                 examples_per_step: int = 0, steps_per_epoch: int = 0, out: Console | None = None) -> None:
        out = out or console
        self.enabled, self.lines = enabled, enabled and not out.is_terminal
        self.total, self.step, self.log_every = total, start, log_every
        self.examples_per_step, self.steps_per_epoch = examples_per_step, steps_per_epoch
        self.losses: dict[str, list[float]] = {}
        self.started = self.last_time = time.monotonic()
        self.first_step = self.last_step = start
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"), console=out,
            transient=True, disable=not enabled or self.lines,
        )
        self.task_id = self.progress.add_task("train", total=total, completed=start, losses="")

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def advance(self, losses: dict[str, list[float]], lr: float | None = None) -> None:
        """One step done; ``losses``: each trained task's losses of this step (micro-batches)."""
        self.step += 1
        text = " ".join(f"{name}={sum(values) / len(values):.3f}" for name, values in losses.items() if values)
        self.progress.update(self.task_id, advance=1, losses=text)
        for name, values in losses.items():
            self.losses.setdefault(name, []).extend(values)
        if self.lines and (self.step % self.log_every == 0 or self.step == self.total):
            self.log_line(lr)

    def log_line(self, lr: float | None) -> None:
        now = time.monotonic()
        rate = (self.step - self.last_step) * self.examples_per_step / max(now - self.last_time, 1e-9)
        pace = (now - self.started) / max(self.step - self.first_step, 1)  # seconds per step
        eta = timedelta(seconds=round(pace * (self.total - self.step)))
        losses = " ".join(f"{name}={sum(v) / len(v):.4f}" for name, v in self.losses.items() if v)
        epoch = f" epoch {self.step / self.steps_per_epoch:.2f}" if self.steps_per_epoch else ""
        log.info("step %d/%d%s | loss %s | lr %s | %.1f examples/s | ETA %s", self.step, self.total, epoch,
                 losses or "-", "-" if lr is None else f"{lr:.3g}", rate, eta)
        self.losses.clear()
        self.last_time, self.last_step = now, self.step


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
