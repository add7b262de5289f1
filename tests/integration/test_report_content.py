"""What report.html shows for runs of every shape: no test split, regression only, a seq2seq
task, hostile task names and labels (escaped, never markup), constant vs varying task weights."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from seq2seq_helpers import EXTRA_WORDS, copy_config  # noqa: E402
from conftest import build_tiny_encoder  # noqa: E402
from toy import toy_config  # noqa: E402

from polytask import api  # noqa: E402

HOSTILE = "<script>alert(1)</script>"


def charts(page: str) -> set[str]:
    return set(re.findall(r'data-chart="([^"]+)"', page))


def summary_rows(page: str) -> list[tuple[str, str]]:
    table = re.search(r'<table class="summary">(.*?)</table>', page, re.S)
    assert table, "no results table"
    return re.findall(r'<tr class="[^"]*" data-task="([^"]*)">\s*<td>[^<]*</td><td class="text">([^<]*)</td>',
                      table.group(1))


def write_run(run: Path, weights: list[float], task: str = "intent") -> None:
    """A run directory as the trainer leaves it (no config.yaml: tasks come from the log)."""
    run.mkdir(parents=True)
    lines = [{"step": s, "split": "dev", "lr": 1e-3 / s, f"{task}/accuracy": 0.5 + s / 10,
              f"train_loss/{task}": 1.0 / s, f"weight/{task}": w, "weight/other": 1.0, "other/mse": 1.0 / s,
              "train_loss/other": 0.5} for s, w in zip((1, 2, 3), weights)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    labels = [HOSTILE, "<img src=x onerror=alert(2)>", "$5 & up"]
    dev = {f"{task}/accuracy": 0.8, "other/mse": 0.3,
           f"{task}/confusion": {"labels": labels, "matrix": [[3, 1, 0], [0, 2, 0], [1, 0, 4]]},
           f"{task}/report": {lab: {"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 3.0}
                              for lab in labels}}
    (run / "results.json").write_text(json.dumps({"best_step": 3, "best_score": 0.8, "dev": dev,
                                                  "wall_time_s": 3725.4}))


def test_hostile_names_and_labels_are_text_not_markup(tmp_path: Path) -> None:
    task = HOSTILE.replace("/", "")  # the log may hold anything; a key's task part has no "/"
    write_run(tmp_path / "run", [1.0, 1.2, 0.9], task=task)
    page = api.report(tmp_path / "run").read_text()
    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;script&gt;" in page  # the task name, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # a label, escaped
    assert "$5 &amp; up" in page
    shown = html.escape(task)
    assert {f"curves-{shown}", f"confusion-{shown}", "weights", "lr"} <= charts(page)
    assert ("other", "mse ★") in summary_rows(page) and "1h 02m 05s" in page  # the wall time
    assert "0.3333 (3)" in page  # other's best dev mse: the lowest (mse is lower-is-better)
    assert re.search(r'class="best-step">3<', page)


@pytest.mark.parametrize(("weights", "drawn"), [([1.0, 1.0, 1.0], False), ([1.0, 1.3, 0.8], True)])
def test_task_weights_are_drawn_only_when_they_vary(tmp_path: Path, weights, drawn) -> None:
    write_run(tmp_path / "run", weights)
    page = api.report(tmp_path / "run").read_text()
    assert ("weights" in charts(page)) is drawn
    assert "conflict" not in charts(page)  # no gradient method, no cosines


def test_regression_only_run_without_test_split(tmp_path: Path, tiny_encoder: Path) -> None:
    raw = toy_config(tmp_path, tiny_encoder, ["regression"], max_steps=4, eval_every=2, num_threads=1)
    del raw["datasets"]["toy"]["test"]
    api.train(raw)  # weighting: equal
    page = (Path(raw["train"]["output_dir"]) / "report.html").read_text()
    assert {"curves-size", "lr"} <= charts(page)
    assert not charts(page) & {"weights", "conflict"} and 'class="labels"' not in page
    assert ("size", "mse ★") in summary_rows(page) and ("size", "pearson") in summary_rows(page)
    assert "<th>dev</th><th>best dev (step)</th>" in page and "this run has no test split" in page


def test_seq2seq_run_with_a_classifier(tmp_path: Path) -> None:
    encoder = build_tiny_encoder(tmp_path / "bert", EXTRA_WORDS)
    tasks = [{"name": "reverse", "type": "seq2seq", "label": "reverse"},
             {"name": "color", "type": "classification", "label": "color"}]
    raw = copy_config(tmp_path / "data", encoder, tasks, n_train=32, max_steps=2, eval_every=2, num_threads=1)
    api.train(raw)
    page = (Path(raw["train"]["output_dir"]) / "report.html").read_text()
    assert {"curves-reverse", "curves-color", "confusion-color"} <= charts(page)
    rows = summary_rows(page)
    assert ("reverse", "rougeL ★") in rows and ("color", "accuracy ★") in rows
    assert "<th>dev</th><th>test</th>" in page


def test_run_without_dev_split_reports_its_test_metrics(tmp_path: Path, tiny_encoder: Path) -> None:
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=2, num_threads=1)
    del raw["datasets"]["toy"]["dev"]
    api.train(raw)  # no evaluation during training: no curves, the last model is tested
    page = (Path(raw["train"]["output_dir"]) / "report.html").read_text()
    assert ("color", "accuracy ★") in summary_rows(page) and "<th>test</th></tr>" in page  # no evaluations: no best-dev column
    assert "confusion-color" in charts(page) and 'id="training"' not in page
