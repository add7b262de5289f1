"""report.html renders offline in headless Chromium: no console errors, a non-blank page, every
chart present in the DOM as a decodable inline PNG, the results and per-label tables there, and
nothing that runs or fetches (no script, no remote URL)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from toy import toy_config

import polytask

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _bench_summary() -> dict:
    tasks = [{"name": "color", "metric": "accuracy", "higher_is_better": True},
             {"name": "size", "metric": "mse", "higher_is_better": False}]
    entry = lambda a, m, dm: {"metrics_mean": {"color/accuracy": a, "size/mse": m},  # noqa: E731
                              "metrics_std": {"color/accuracy": 0.01, "size/mse": 0.02},
                              "delta_m_mean": dm, "delta_m_std": 1.0, "delta_m_per_seed": [dm, dm]}
    return {"tasks": tasks, "seeds": [42, 43], "split": "test", "stl": entry(0.8, 0.5, 0.0),
            "methods": {"ew": entry(0.82, 0.55, -3.75), "pcgrad": entry(0.85, 0.45, 8.1)}}


@pytest.fixture
def report(tmp_path: Path, tiny_encoder: Path) -> Path:
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression", "multilabel",
                                              "token_classification"], max_steps=4, eval_every=2,
                     num_threads=1)
    raw["weighting"] = {"name": "upgrad"}  # weights that vary and gradient cosines
    polytask.train(raw)
    run = Path(raw["train"]["output_dir"])
    polytask.relatedness(raw, steps=2, out=run)
    (run / "bench.json").write_text(json.dumps(_bench_summary()))  # the bench sections' input
    return polytask.report(run)


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    shot = tmp_path / "report.png"
    common = [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,3000"]
    done = subprocess.run([*common, f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
                           report.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console_errors = [ln for ln in done.stderr.splitlines() if "CONSOLE" in ln and "ERROR" in ln.upper()]
    assert not console_errors, console_errors
    pixels = imread(shot)
    assert pixels.shape[0] > 1000 and float(np.std(pixels)) > 0.02  # not a blank page

    dom = subprocess.run([*common, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    charts = dict(re.findall(r'data-chart="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,([^"]+)"', dom))
    expected = {"curves-color", "curves-size", "curves-animals", "curves-tags", "lr", "weights",
                "conflict", "confusion-color", "relatedness-tag_affinity", "relatedness-label_nmi", "pareto"}
    assert expected <= set(charts), sorted(charts)
    for name, data in charts.items():
        assert base64.b64decode(data).startswith(b"\x89PNG"), name
    assert 'class="delta-m"' in dom and "pcgrad" in dom
    summary = re.search(r'<table class="summary">(.*?)</table>', dom, re.S).group(1)
    for task, metric in (("color", "accuracy"), ("size", "mse"), ("animals", "micro_f1"), ("tags", "f1")):
        assert f'data-task="{task}"' in summary and f"{metric} ★" in summary
    assert "<th>dev</th><th>test</th>" in summary
    assert re.search(r'class="best-step">\d+<', dom) and 'class="digest"' in dom and 'class="wall-time"' in dom
    labels = dict(re.findall(r'<table class="labels" data-task="(\w+)">(.*?)</table>', dom, re.S))
    assert set(labels) == {"color", "animals", "tags"}
    assert "<td>blue</td>" in labels["color"] and "<td>cat</td>" in labels["animals"]
    assert "<td>color</td>" in labels["tags"]  # seqeval entity types of B-color / B-animal
    assert "<script" not in dom and not re.search(r'(src|href)="(?!data:)', dom)
