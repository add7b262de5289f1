"""Synthetic, learnable multi-task data and configs for tests (no downloads)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

COLORS = ["red", "blue", "green"]
ANIMALS = ["cat", "dog", "bird"]
FILLER = ["the", "a", "very", "big", "small", "i", "see", "near", "house", "tree"]
VOCAB = COLORS + ANIMALS + FILLER


def sentence(rng: random.Random) -> dict[str, Any]:
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 7))]
    color = rng.choice(COLORS)
    words.insert(rng.randrange(len(words) + 1), color)
    for _ in range(rng.randint(0, 2)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(ANIMALS))
    tags = ["B-color" if w in COLORS else "B-animal" if w in ANIMALS else "O" for w in words]
    return {
        "text": " ".join(words),
        "tokens": words,
        "color": color,                                          # classification
        "animals": sorted({w for w in words if w in ANIMALS}),   # multilabel
        "size": float(words.count("very") + 0.5 * words.count("big")),  # regression
        "tags": tags,                                            # token classification
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def toy_files(folder: Path, n_train: int = 96, n_dev: int = 32, seed: int = 0) -> dict[str, Path]:
    rng = random.Random(seed)
    return {split: write_jsonl(folder / f"{split}.jsonl", [sentence(rng) for _ in range(n)])
            for split, n in (("train", n_train), ("dev", n_dev), ("test", n_dev))}


TASKS = {
    "classification": {"name": "color", "type": "classification", "label": "color"},
    "multilabel": {"name": "animals", "type": "multilabel", "label": "animals"},
    "regression": {"name": "size", "type": "regression", "label": "size"},
    "token_classification": {"name": "tags", "type": "token_classification", "label": "tags"},
}


def toy_config(folder: Path, encoder: Path, task_types: list[str], **train: Any) -> dict[str, Any]:
    files = toy_files(folder)
    return {
        "model": {"encoder": str(encoder), "max_length": 32},
        "datasets": {"toy": {"train": str(files["train"]), "dev": str(files["dev"]),
                             "test": str(files["test"]), "tokens": "tokens"}},
        "tasks": [{**TASKS[t], "dataset": "toy"} for t in task_types],
        "train": {"output_dir": str(folder / "run"), "batch_size": 16, "lr": 1e-3, "epochs": 2,
                  "progress": False, "warmup_ratio": 0.0, **train},
    }


def resume_matches_unbroken(tmp_path: Path, raw: dict[str, Any], step: int = 6) -> tuple[Path, Path]:
    """Train ``raw`` to the end, copy the run, delete its checkpoint at ``step`` and resume the
    copy from the one before; assert the final weights and metrics.jsonl are bit-identical.
    Returns (unbroken, resumed) run dirs for further checks."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from polytask.config import parse_config
    from polytask.training.trainer import train

    unbroken, crashed = tmp_path / "run", tmp_path / "crashed"
    raw["train"]["output_dir"] = str(unbroken)
    train(parse_config(raw))
    shutil.copytree(unbroken, crashed)
    shutil.rmtree(crashed / "checkpoints" / f"step-{step:08d}")
    raw["train"]["output_dir"] = str(crashed)
    train(parse_config(raw), resume=True)
    final = f"checkpoints/step-{step:08d}/model.safetensors"
    expected, actual = load_file(str(unbroken / final)), load_file(str(crashed / final))
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert (unbroken / "metrics.jsonl").read_text() == (crashed / "metrics.jsonl").read_text()
    return unbroken, crashed
