"""report.html: one self-contained page (charts inlined as base64 PNG; no script, no CDN) about
a run directory. Each section appears when its source file is there:

- metrics.jsonl     per-task dev primary metric and train loss, task weights, the mean
                    gradient cosine per task pair (gradient methods), negative-transfer alarms;
- relatedness.json  one heatmap per relatedness signal (``polytask relatedness``);
- bench.json        the Δm table and the two-task Pareto plot (``polytask bench``).
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polytask.atomic import write_text
from polytask.errors import PolytaskError
from polytask.evaluation import plots

log = logging.getLogger(__name__)

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.alarm{color:#a40000}"""


def _chart(image: bytes, name: str, caption: str) -> str:
    data = base64.b64encode(image).decode("ascii")
    return (f'<figure class="chart" data-chart="{html.escape(name)}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _primary_metrics(run_dir: Path, lines: list[dict[str, Any]]) -> dict[str, str]:
    """Task -> primary metric, from the run's config (else the first metric logged)."""
    import polytask.tasks  # noqa: F401 - registers task types
    from polytask.config import TaskConfig
    from polytask.tasks.base import TASK_TYPES

    config = run_dir / "config.yaml"
    tasks = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("tasks", []) if config.is_file() else []
    out = {t["name"]: TASK_TYPES.get(t["type"]).primary_metric_for(TaskConfig.model_validate(t))
           for t in tasks if t.get("type") in TASK_TYPES.names()}
    for line in lines if not out else []:
        for key in line:
            task, _, metric = key.partition("/")
            if metric and metric != "exact_match" and task not in out and \
                    task not in ("train_loss", "weight", "cosine", "sharing"):
                out.setdefault(task, metric)
    return out


def _series(lines: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    points = [(ln["step"], ln[key]) for ln in lines if isinstance(ln.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def training_section(run_dir: Path) -> str:
    lines = [ln for ln in _read_lines(run_dir / "metrics.jsonl") if ln.get("split") == "dev"]
    if not lines:
        return ""
    charts = []
    for task, metric in _primary_metrics(run_dir, lines).items():
        series = {f"dev {metric}": _series(lines, f"{task}/{metric}"),
                  "train loss": _series(lines, f"train_loss/{task}")}
        series = {k: v for k, v in series.items() if v[0]}
        if series:
            charts.append(_chart(plots.lines(series, f"{task}: training and validation", "value"),
                                 f"curves-{task}", f"{task}: dev {metric} and train loss per evaluation"))
    keys = sorted({k for ln in lines for k in ln if k.startswith("weight/")})
    if keys:
        weights = {k.removeprefix("weight/"): _series(lines, k) for k in keys}
        charts.append(_chart(plots.lines(weights, "task weights", "weight"), "weights", "task weights over time"))
    pairs = sorted({k for ln in lines for k in ln if k.startswith("cosine/")})
    if pairs:
        names = sorted({t for k in pairs for t in k.removeprefix("cosine/").split("|")})
        matrix = np.eye(len(names))
        for key in pairs:
            a, b = key.removeprefix("cosine/").split("|")
            mean = float(np.mean(_series(lines, key)[1]))
            matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = mean
        charts.append(_chart(plots.heatmap(matrix, names, "mean gradient cosine (conflict < 0)"),
                             "conflict", "gradient conflict: mean cosine of task gradients per pair"))
    alarms = [f"<li>step {ln['step']}: {html.escape(a)}</li>" for ln in lines for a in ln.get("alarms", [])]
    alarm_html = f'<h3 class="alarm">Alarms</h3><ul class="alarm">{"".join(alarms)}</ul>' if alarms else ""
    return f'<h2>Training</h2><div class="charts">{"".join(charts)}</div>{alarm_html}'


def relatedness_section(path: Path) -> str:
    result = json.loads(path.read_text(encoding="utf-8"))
    names, charts = result["tasks"], []
    for key, signal in result["signals"].items():
        matrix = np.array([[np.nan if v is None else v for v in row] for row in signal["matrix"]])
        diverging = key in ("gradient_cosine", "parameter_cosine", "tag_affinity")
        charts.append(_chart(plots.heatmap(matrix, names, key, diverging), f"relatedness-{key}",
                             signal["description"]))
    groups = result.get("groups")
    suggestion = (f"<p>Suggested groups (from {html.escape(str(result.get('grouping_signal')))}): "
                  + " · ".join("{" + ", ".join(map(html.escape, g)) + "}" for g in groups) + "</p>") if groups else ""
    return f'<h2>Task relatedness</h2>{suggestion}<div class="charts">{"".join(charts)}</div>'


def bench_table(bench: dict[str, Any]) -> str:
    """The Δm table as HTML (the same rows as results.md)."""
    keys = [f"{t['name']}/{t['metric']}" for t in bench["tasks"]]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    rows = []
    for name, entry in {"stl": bench["stl"], **bench["methods"]}.items():
        dm = "—" if name == "stl" else f"{entry['delta_m_mean']:+.2f} ± {entry['delta_m_std']:.2f}"
        cells = "".join(f"<td>{entry['metrics_mean'].get(k, float('nan')):.4f} ± "
                        f"{entry['metrics_std'].get(k, 0.0):.4f}</td>" for k in keys)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{dm}</td>{cells}</tr>")
    return (f'<table class="delta-m"><tr><th>method</th><th>Δm % (mean ± std)</th>{head}</tr>'
            f'{"".join(rows)}</table>')


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names of the points no other point beats on both axes (both higher-is-better)."""
    return {n for n, (x, y) in points.items()
            if not any(ox >= x and oy >= y and (ox, oy) != (x, y) for ox, oy in points.values())}


def bench_section(path: Path) -> str:
    bench = json.loads(path.read_text(encoding="utf-8"))
    parts = [f"<h2>Benchmark ({bench['split']} metrics, {len(bench['seeds'])} seed(s))</h2>",
             "<p>Δm: mean relative change of each task's primary metric against its single-task "
             "baseline, sign-flipped for lower-is-better metrics.</p>", bench_table(bench)]
    if len(bench["tasks"]) >= 2:
        (a, b) = bench["tasks"][:2]
        ka, kb = f"{a['name']}/{a['metric']}", f"{b['name']}/{b['metric']}"
        sign_a, sign_b = (1 if a["higher_is_better"] else -1), (1 if b["higher_is_better"] else -1)
        entries = {"stl": bench["stl"], **bench["methods"]}
        points = {n: (e["metrics_mean"][ka], e["metrics_mean"][kb]) for n, e in entries.items()
                  if ka in e["metrics_mean"] and kb in e["metrics_mean"]}
        front = pareto_front({n: (sign_a * x, sign_b * y) for n, (x, y) in points.items()})
        parts.append(_chart(plots.pareto(points, ka, kb, front), "pareto", f"{ka} vs {kb} per method"))
    return "".join(parts)


def build_report(run_dir: str | Path, relatedness: str | Path | None = None) -> Path:
    """Write ``run_dir/report.html`` from whatever the directory holds; returns its path."""
    run_dir = Path(run_dir)
    related = Path(relatedness) if relatedness else run_dir / "relatedness.json"
    sections = []
    if (run_dir / "metrics.jsonl").is_file():
        sections.append(training_section(run_dir))
    if related.is_file():
        sections.append(relatedness_section(related))
    if (run_dir / "bench.json").is_file():
        sections.append(bench_section(run_dir / "bench.json"))
    if not any(sections):
        raise PolytaskError(f"{run_dir}: no metrics.jsonl, relatedness.json or bench.json to report on; "
                                "point at a training, relatedness or bench output directory")
    title = f"polytask report — {html.escape(run_dir.name)}"
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{STYLE}</style></head><body><h1>{title}</h1>{''.join(sections)}</body></html>")
    write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def write_report_quietly(run_dir: str | Path) -> None:
    """build_report for the end of training: a plotting failure must not fail the run."""
    try:
        path = build_report(run_dir)
        log.info("report: %s", path)
    except Exception as exc:  # noqa: BLE001 - the trained model matters more than its charts
        log.warning("could not write report.html in %s: %s", run_dir, exc)
