"""Static charts as PNG bytes (matplotlib's object API with the Agg canvas: no display, no
pyplot global state), for report.html and the relatedness heatmaps."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


@dataclass(frozen=True)
class Chart:
    """One PNG of report.html, inlined (``data``) so the page needs no other file."""

    name: str
    caption: str
    image: bytes

    @property
    def data(self) -> str:
        return base64.b64encode(self.image).decode("ascii")


def png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def heatmap(matrix: np.ndarray, names: Sequence[str], title: str, diverging: bool = True) -> bytes:
    """A task x task matrix with each value written in its cell (NaN cells left blank)."""
    size = 1.6 + 0.7 * len(names)
    figure = Figure(figsize=(size + 1.2, size))
    axes = figure.add_subplot()
    values = np.asarray(matrix, dtype=float)
    finite = values[np.isfinite(values)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    limits = (-bound, bound) if diverging else (0.0, max(bound, 1.0))  # shares, NMI, JSD: [0, 1]
    image = axes.imshow(np.ma.masked_invalid(values), cmap="RdBu" if diverging else "viridis",
                        vmin=limits[0], vmax=limits[1])
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axes.set_yticks(range(len(names)), names)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            strong = abs(value) > 0.6 * limits[1] if diverging else value > 0.5 * limits[1]
            axes.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=8,
                      color="white" if strong != (not diverging) else "black")
    axes.set_title(title, fontsize=10)
    return png(figure)


def lines(series: dict[str, tuple[list[float], list[float]]], title: str, ylabel: str,
          xlabel: str = "step") -> bytes:
    """One line per named (x, y) series."""
    figure = Figure(figsize=(5.5, 3.2))
    axes = figure.add_subplot()
    for name, (xs, ys) in series.items():
        axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    if xlabel == "step":
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    if series:
        axes.legend(fontsize=8)
    return png(figure)


def curves(metric: dict[str, tuple[list[float], list[float]]],
           loss: dict[str, tuple[list[float], list[float]]], title: str, metric_label: str) -> bytes:
    """One task's training: its dev metric (left) and its losses (right), each on its own axis,
    so a metric in [0, 1] is not flattened by a loss of 3."""
    panels = [(series, label) for series, label in ((metric, metric_label), (loss, "loss")) if series]
    figure = Figure(figsize=(4.6 * len(panels), 3.0))
    for i, (series, label) in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), i + 1)
        for name, (xs, ys) in series.items():
            axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=name)
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return png(figure)


def confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> bytes:
    """Counts of gold (rows) x predicted (columns) labels, each count written in its cell."""
    values = np.asarray(matrix, dtype=float)
    size = 2.2 + 0.45 * len(labels)
    figure = Figure(figsize=(size + 1.0, size))
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="Blues", vmin=0, vmax=max(float(values.max(initial=0)), 1.0))
    figure.colorbar(image, ax=axes, shrink=0.8)
    shown = [label if len(label) <= 18 else label[:17] + "…" for label in labels]
    # labels are user data: a "$" must not switch matplotlib into mathtext
    axes.set_xticks(range(len(labels)), shown, rotation=45, ha="right", parse_math=False)
    axes.set_yticks(range(len(labels)), shown, parse_math=False)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    if len(labels) <= 25:  # beyond that the numbers would not fit their cells
        for (i, j), value in np.ndenumerate(values):
            axes.text(j, i, f"{int(value)}", ha="center", va="center", fontsize=9,
                      color="white" if value > 0.5 * values.max() else "black")
    axes.set_title(title, fontsize=10)
    return png(figure)


def pareto(points: dict[str, tuple[float, float]], xlabel: str, ylabel: str,
           front: set[str]) -> bytes:
    """Each method as a point of its two task scores; the non-dominated ones are marked."""
    figure = Figure(figsize=(5.5, 4.0))
    axes = figure.add_subplot()
    for name, (x, y) in points.items():
        on_front = name in front
        axes.scatter([x], [y], s=60 if on_front else 30, marker="*" if on_front else "o")
        axes.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ordered = sorted((points[n] for n in front), key=lambda p: p[0])
    if len(ordered) > 1:
        axes.plot([p[0] for p in ordered], [p[1] for p in ordered], linestyle="--", alpha=0.5)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.margins(0.12)  # room for the names written next to the outermost points
    axes.set_title("Pareto front (★ = not dominated)", fontsize=10)
    axes.grid(alpha=0.3)
    return png(figure)
