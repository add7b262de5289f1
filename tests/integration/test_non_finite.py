"""Non-finite numbers: a gradient norm that overflows stops the run before the optimizer step,
naming the step and the tasks; NaN in a regression target or a numeric tabular field is a
validation issue with file:line before anything is trained or written."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import run_in_process, write_config  # noqa: E402
from toy import toy_config  # noqa: E402

from polytask.training.checkpoint import checkpoints, is_complete  # noqa: E402


def rewrite(path: Path, change) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(change(i, row)) + "\n" for i, row in enumerate(rows)))


def test_overflowing_gradient_norm_stops_before_the_step(tmp_path, tiny_encoder, monkeypatch, capsys):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=12,
                     checkpoint_every=1, eval_every=1)
    # One labelled regression row, 1.8e19: its squared error (3.2e38) still fits in float32, so
    # the loss check passes, but the squared gradient (2·1.8e19)² does not: the norm is inf.
    rewrite(tmp_path / "train.jsonl", lambda i, row: {**row, "size": 1.8e19 if i == 50 else None})
    code, err = run_in_process(monkeypatch, capsys, "train", write_config(tmp_path / "c.yaml", raw))
    assert code == 2, err
    assert "Traceback" not in err
    assert "the gradient norm is inf" in err and "'size'" in err and "before the optimizer step" in err
    step = int(re.search(r"step (\d+): the gradient norm", err).group(1))
    saved = [p for p in checkpoints(tmp_path / "run" / "checkpoints") if is_complete(p)]
    assert saved and int(saved[-1].name.split("-")[1]) == step - 1  # the step before is kept
    for path in saved:  # and every checkpoint left behind is finite
        assert all(torch.isfinite(t).all() for t in load_file(str(path / "model.safetensors")).values())


def test_nan_regression_target_is_a_validation_issue(tmp_path, tiny_encoder, monkeypatch, capsys):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=4)
    # json.dumps writes float("nan") as the bare token NaN, which Python's JSON reader accepts.
    rewrite(tmp_path / "train.jsonl", lambda i, row: {**row, "size": float("nan")} if i == 6 else row)
    assert "NaN" in (tmp_path / "train.jsonl").read_text().splitlines()[6]
    code, err = run_in_process(monkeypatch, capsys, "train", write_config(tmp_path / "c.yaml", raw))
    assert code == 2 and "Traceback" not in err
    assert "train.jsonl:7" in err and "not a finite number" in err
    assert not (tmp_path / "run").exists()  # nothing written before the data is valid


def test_nan_numeric_tabular_field_is_a_validation_issue(tmp_path, monkeypatch, capsys):
    rows = [{"user": f"u{i}", "price": float("nan") if i == 3 else float(i), "click": i % 2}
            for i in range(8)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = {"model": {"encoder": "tabular"},
           "datasets": {"rows": {"train": str(tmp_path / "train.jsonl"), "categorical": ["user"],
                                 "numeric": ["price"]}},
           "tasks": [{"name": "click", "type": "classification", "dataset": "rows", "label": "click"}],
           "train": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "progress": False}}
    code, err = run_in_process(monkeypatch, capsys, "train", write_config(tmp_path / "c.yaml", raw))
    assert code == 2 and "Traceback" not in err
    assert "train.jsonl:4: [price] numeric column 'price' must be a finite number" in err
    assert not (tmp_path / "run").exists()
