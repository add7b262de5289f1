"""examples/recsys end to end on tiny data: the README's commands (train with MMoE, predict)
through the CLI, PLE (train, predict, evaluate) through the Python API, AUC for both tasks."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask  # noqa: E402

import polytask as api  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "recsys"
TINY = ["--set", "train.max_steps=12", "--set", "train.eval_every=6", "--set", "train.batch_size=64",
        "--set", "model.tabular.hidden_size=8", "--set", "model.tabular.mlp_hidden=16",
        "--set", "train.num_threads=1"]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """The example folder's configs next to tiny data from the example's own generator."""
    folder = tmp_path_factory.mktemp("recsys")
    for name in ("config_mmoe.yaml", "config_ple.yaml"):
        shutil.copy(EXAMPLE / name, folder / name)
    spec = importlib.util.spec_from_file_location("make_recsys_data", ROOT / "scripts" / "make_recsys_data.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.write(folder / "data", rows=1000, seed=7)
    return folder


@pytest.mark.slow
def test_mmoe_cli_train_and_predict(example, tmp_path):
    run = tmp_path / "mmoe"
    result = polytask("train", example / "config_mmoe.yaml", "--set", f"train.output_dir={run}", *TINY)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    test = lines[-1]
    assert test["split"] == "final_test"
    for task in ("click", "conversion"):
        assert 0 <= test[f"{task}/auc"] <= 1
    assert json.loads((run / "model" / "polytask.json").read_text())["model"]["sharing"]["name"] == "mmoe"

    result = polytask("predict", run / "model", "-i", example / "data" / "predict.jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 5 and rows[0]["user_id"].startswith("u")
    for row in rows:
        for task in ("click", "conversion"):
            scores = row["predictions"][task]["scores"]
            assert set(scores) == {"0", "1"} and abs(scores["0"] + scores["1"] - 1) < 1e-5

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"user_id": "u001", "price": "free"}\n["not", "an", "object"]\n')
    result = polytask("predict", run / "model", "-i", bad)
    assert result.returncode == 2
    assert "bad.jsonl:1: [price]" in result.stderr and "bad.jsonl:2: [input]" in result.stderr


def test_ple_python_api(example, tmp_path):
    overrides = [f"train.output_dir={tmp_path / 'ple'}", "train.progress=false",
                 *(value for flag, value in zip(TINY[::2], TINY[1::2]))]
    results = api.train(example / "config_ple.yaml", overrides)
    assert {"click/auc", "conversion/auc"} <= set(results["test"])
    predictions = api.predict(tmp_path / "ple" / "model", [{"user_id": "u001", "item_id": "i002",
                                                             "device": "mobile", "price": 12.5}])
    assert 0 < predictions[0]["conversion"]["scores"]["1"] < 1
    scores = api.evaluate(tmp_path / "ple" / "model", example / "config_ple.yaml", ("dev",))
    assert 0 <= scores["dev"]["click/auc"] <= 1
