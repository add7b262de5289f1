"""`polytask bench` end to end on toy data with the tiny encoder: 2 methods x 2 seeds, the Δm
table, resumability, and `polytask report` rebuilding the page of a training run."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from cli_helpers import polytask, write_config
from toy import toy_config

from polytask import api
from polytask.errors import PolytaskError


def test_bench_writes_table_and_resumes(tmp_path: Path, tiny_encoder: Path, caplog) -> None:
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=6, eval_every=3,
                     num_threads=1)
    config = write_config(tmp_path / "config.yaml", raw)
    out = tmp_path / "bench"
    done = polytask("bench", config, "--methods", "ew,pcgrad", "--seeds", "2", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "results.md").read_text()
    for row in ("| stl |", "| ew |", "| pcgrad |", "color/accuracy", "size/mse"):
        assert row in table
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * 2 + 2 * 2  # 2 STL tasks + 2 methods, 2 seeds each
    summary = json.loads((out / "bench.json").read_text())
    assert set(summary["methods"]) == {"ew", "pcgrad"} and summary["split"] == "test"
    assert len(summary["methods"]["ew"]["delta_m_per_seed"]) == 2
    page = (out / "report.html").read_text()
    assert 'data-chart="pareto"' in page and "Δm" in page
    # a rerun trains nothing: every result file is already there
    before = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    with caplog.at_level(logging.INFO, logger="polytask.benchmarking"):
        again = api.bench(config, ["ew", "pcgrad"], seeds=2, out=out)
    assert {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")} == before
    assert again == summary and caplog.text.count("already done") == len(before)


def test_train_writes_report_and_report_rebuilds_it(tmp_path: Path, tiny_encoder: Path) -> None:
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=4, eval_every=2,
                     num_threads=1, stl_baselines={"color": 1.01}, alarm_patience=1)
    raw["weighting"] = {"name": "pcgrad"}
    api.train(raw)
    run = Path(raw["train"]["output_dir"])
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("negative transfer: color/accuracy" in a for ln in lines for a in ln.get("alarms", []))
    page = (run / "report.html").read_text()
    for chart in ("curves-color", "curves-size", "lr", "conflict", "confusion-color"):
        assert f'data-chart="{chart}"' in page
    (run / "report.html").unlink()
    rebuilt = polytask("report", run)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert (run / "report.html").is_file()
    with pytest.raises(PolytaskError, match="metrics.jsonl"):
        api.report(tmp_path / "nothing-here")
