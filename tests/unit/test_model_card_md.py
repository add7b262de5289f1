"""A saved model directory carries README.md, a Hugging Face model card: tasks, label sets,
the training data, the dev/test metrics of its run, library_name polytask; listed in its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from toy import toy_config

import polytask
from polytask import manifest
from polytask.models.multitask import MultiTaskModel


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_encoder) -> Path:
    folder = tmp_path_factory.mktemp("card")
    polytask.train(toy_config(folder, tiny_encoder, ["classification", "token_classification"],
                              max_steps=2, eval_every=2))
    return folder / "run"


def test_model_card_names_tasks_labels_data_and_metrics(run_dir):
    card = ModelCard.load(run_dir / "model" / "README.md")
    assert card.data.library_name == "polytask"
    assert {"polytask", "multi-task", "classification", "token_classification"} <= set(card.data.tags)
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    text = card.text
    for split in ("dev", "test"):
        accuracy = results[split]["color/accuracy"]
        assert f"| color | {split} | accuracy | {accuracy:.4f} |" in text
    assert "| tags | test | token_accuracy |" in text
    assert "| color | classification | blue, green, red |" in text
    assert str(run_dir.parent / "train.jsonl") in text
    assert f"Selected at step {results['best_step']}" in text


def test_the_card_is_inside_the_manifest_and_the_model_still_loads(run_dir):
    listed = manifest.read_manifest(run_dir / "model")
    assert "README.md" in json.dumps(listed)
    assert manifest.problems(run_dir / "model") == []
    MultiTaskModel.from_pretrained(run_dir / "model")


def test_a_model_saved_outside_a_run_says_what_it_does_not_know(run_dir, tmp_path):
    model = MultiTaskModel.from_pretrained(run_dir / "model")
    model.save_pretrained(tmp_path / "copy")
    text = (tmp_path / "copy" / "README.md").read_text(encoding="utf-8")
    assert "No results.json beside the model" in text and "Not recorded" in text
