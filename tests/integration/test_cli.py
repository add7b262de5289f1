"""The CLI end to end: train (shared-input tasks + a task from another file), evaluate, predict."""

from __future__ import annotations

import pytest
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, write_config  # noqa: E402
from toy import sentence, toy_config, toy_files, write_jsonl  # noqa: E402


def three_task_config(tmp_path, encoder):
    raw = toy_config(tmp_path, encoder, ["classification", "token_classification"], epochs=8, lr=3e-3)
    other = tmp_path / "other"
    other.mkdir()
    files = toy_files(other, seed=1)
    raw["datasets"]["other"] = {"train": str(files["train"]), "dev": str(files["dev"]),
                                "test": str(files["test"]), "text": "text"}
    raw["tasks"].append({"name": "size", "type": "regression", "dataset": "other", "label": "size"})
    return write_config(tmp_path / "config.yaml", raw)


@pytest.mark.slow
def test_train_evaluate_predict(tmp_path, tiny_encoder):
    config = three_task_config(tmp_path, tiny_encoder)
    result = polytask("train", config, "--set", "train.eval_every=12")
    assert result.returncode == 0, result.stderr
    model_dir = tmp_path / "run" / "model"
    assert (model_dir / "model.safetensors").is_file()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("size/mse" in m and "color/accuracy" in m for m in metrics)

    evaluated = polytask("evaluate", model_dir, "--output", tmp_path / "eval.json")
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads((tmp_path / "eval.json").read_text())["test"]
    assert scores["color/accuracy"] > 0.8 and scores["tags/f1"] > 0.8 and "size/mse" in scores

    import random
    rows = [sentence(random.Random(i)) for i in range(5)]
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"text": r["text"]} for r in rows])
    predicted = polytask("predict", model_dir, "--input", inputs, "--output", tmp_path / "out.jsonl")
    assert predicted.returncode == 0, predicted.stderr
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 5
    for line, row in zip(lines, rows):
        assert set(line["predictions"]) == {"color", "tags", "size"}
        assert len(line["predictions"]["tags"]["tags"]) == len(row["tokens"])
        assert isinstance(line["predictions"]["size"]["prediction"], float)


def test_list_shows_every_family():
    result = polytask("list")
    assert result.returncode == 0
    for member in ("classification", "multilabel", "regression", "token_classification",
                   "proportional", "temperature", "uniform", "round_robin", "annealed", "equal"):
        assert member in result.stdout


def test_unknown_config_key_is_exit_2_with_suggestion(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    raw["train"]["learning_rate"] = 1e-3
    result = polytask("train", write_config(tmp_path / "c.yaml", raw))
    assert result.returncode == 2
    assert "c.yaml:" in result.stderr and "train.learning_rate" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_predict_bad_input_names_line(tmp_path, tiny_encoder):
    config = three_task_config(tmp_path, tiny_encoder)
    assert polytask("train", config, "--set", "train.max_steps=2").returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "red cat"}\n{not json\n', encoding="utf-8")
    result = polytask("predict", tmp_path / "run" / "model", "--input", bad)
    assert result.returncode == 2 and "bad.jsonl:2" in result.stderr
