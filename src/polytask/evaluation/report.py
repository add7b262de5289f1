"""report.html: one self-contained page about a run directory, rendered from the Jinja2
template ``templates/report.html.j2`` with autoescaping (task names, labels and paths come from
user data); charts are inlined as base64 PNG, with no script and no network dependency. Each
section appears when its source file is there:

- metrics.jsonl, results.json  the training run: summary table, curves, learning rate, task
                    weights and gradient conflict, per-label results, alarms (run_report.py);
- relatedness.json  one heatmap per relatedness signal (``polytask relatedness``);
- bench.json        the Δm table and the two-task Pareto plot (``polytask bench``).
"""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from polytask.atomic import write_text
from polytask.errors import PolytaskError
from polytask.evaluation import plots
from polytask.evaluation.plots import Chart
from polytask.evaluation.run_report import run_section

log = logging.getLogger(__name__)



def relatedness_section(path: Path) -> dict[str, Any]:
    result = json.loads(path.read_text(encoding="utf-8"))
    names, charts = result["tasks"], []
    for key, signal in result["signals"].items():
        matrix = np.array([[np.nan if v is None else v for v in row] for row in signal["matrix"]])
        diverging = key in ("gradient_cosine", "parameter_cosine", "tag_affinity")
        charts.append(Chart(f"relatedness-{key}", signal["description"],
                            plots.heatmap(matrix, names, key, diverging)))
    return {"charts": charts, "groups": result.get("groups") or [],
            "signal": str(result.get("grouping_signal"))}


def bench_table(bench: dict[str, Any]) -> dict[str, Any]:
    """The Δm table (the same rows as results.md): column keys and one row per method."""
    keys = [f"{t['name']}/{t['metric']}" for t in bench["tasks"]]
    rows = []
    for name, entry in {"stl": bench["stl"], **bench["methods"]}.items():
        dm = "—" if name == "stl" else f"{entry['delta_m_mean']:+.2f} ± {entry['delta_m_std']:.2f}"
        cells = [f"{entry['metrics_mean'][k]:.4f} ± {entry['metrics_std'].get(k, 0.0):.4f}"
                 if k in entry["metrics_mean"] else "—" for k in keys]
        rows.append({"method": name, "delta_m": dm, "cells": cells})
    return {"keys": keys, "rows": rows}


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of the points no other point beats on both axes (both higher-is-better)."""
    return {n for n, (x, y) in points.items()
            if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points.values())}


def bench_section(path: Path) -> dict[str, Any]:
    bench = json.loads(path.read_text(encoding="utf-8"))
    section = {"split": bench["split"], "seeds": len(bench["seeds"]), "table": bench_table(bench), "chart": None}
    if len(bench["tasks"]) >= 2:
        (a, b) = bench["tasks"][:2]
        ka, kb = f"{a['name']}/{a['metric']}", f"{b['name']}/{b['metric']}"
        sign_a, sign_b = (1 if a["higher_is_better"] else -1), (1 if b["higher_is_better"] else -1)
        entries = {"stl": bench["stl"], **bench["methods"]}
        points = {n: (e["metrics_mean"][ka], e["metrics_mean"][kb]) for n, e in entries.items()
                  if ka in e["metrics_mean"] and kb in e["metrics_mean"]}
        front = pareto_front({n: (sign_a * x, sign_b * y) for n, (x, y) in points.items()})
        section["chart"] = Chart("pareto", f"{ka} vs {kb} per method", plots.pareto(points, ka, kb, front))
    return section


@cache
def template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("polytask.evaluation", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    environment.filters["number"] = number
    return environment.get_template("report.html.j2")


def number(value: Any) -> str:
    """A metric as the table shows it: 4 decimals, large values with fewer, missing as "—"."""
    if not isinstance(value, (int, float)) or value != value:
        return "—"
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.1f}"


def build_report(run_dir: str | Path, relatedness: str | Path | None = None) -> Path:
    """Write ``run_dir/report.html`` from whatever the directory holds; returns its path."""
    run_dir = Path(run_dir)
    related = Path(relatedness) if relatedness else run_dir / "relatedness.json"
    sections = {
        "run": run_section(run_dir) if (run_dir / "metrics.jsonl").is_file() else None,
        "relatedness": relatedness_section(related) if related.is_file() else None,
        "bench": bench_section(run_dir / "bench.json") if (run_dir / "bench.json").is_file() else None,
    }
    if not any(sections.values()):
        raise PolytaskError(f"{run_dir}: no metrics.jsonl, relatedness.json or bench.json to report on; "
                            "point at a training, relatedness or bench output directory")
    page = template().render(title=f"polytask report — {run_dir.name}", **sections)
    write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def write_report_quietly(run_dir: str | Path) -> None:
    """build_report for the end of training: a plotting failure must not fail the run."""
    try:
        path = build_report(run_dir)
        log.info("report: %s", path)
    except Exception as exc:  # noqa: BLE001 - the trained model matters more than its charts
        log.warning("could not write report.html in %s: %s", run_dir, exc)
