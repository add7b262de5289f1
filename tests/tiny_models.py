"""Tiny trained models for serving/export tests: every task type, a CRF tagger and a plain one."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from toy import TASKS, sentence, toy_config

from polytask.config import parse_config
from polytask.data.records import Record
from polytask.training.trainer import train

ALL = ["classification", "multilabel", "regression", "token_classification"]


def every_task_config(folder: Path, encoder: Path, **train_options: Any) -> dict[str, Any]:
    """The toy tasks of every type, plus a second tagger so both CRF and softmax decoding run."""
    raw = toy_config(folder, encoder, ALL, **{"max_steps": 4, "eval_every": 4, **train_options})
    raw["tasks"][3]["crf"] = True
    raw["tasks"][2]["normalize_target"] = True
    raw["tasks"].append({**TASKS["token_classification"], "name": "tags_plain", "dataset": "toy"})
    return raw


def train_every_task(folder: Path, encoder: Path, **train_options: Any) -> Path:
    """Train briefly (the numbers only need to be non-trivial) and return the model dir."""
    folder.mkdir(parents=True, exist_ok=True)
    train(parse_config(every_task_config(folder, encoder, **train_options)))
    return folder / "run" / "model"


def sample_records(n: int = 6, seed: int = 7) -> list[Record]:
    """Texts and pre-split words, of different lengths (padding inside a batch)."""
    rng = random.Random(seed)
    rows = [sentence(rng) for _ in range(n)]
    return [Record("t", i, words=r["tokens"]) if i % 2 else Record("t", i, text=r["text"])
            for i, r in enumerate(rows, start=1)]


ROOT = Path(__file__).resolve().parents[1]


def recsys_data(folder: Path, rows: int = 300, seed: int = 3) -> Path:
    """examples/recsys's synthetic impressions (scripts/make_recsys_data.py), small."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_recsys_data", ROOT / "scripts" / "make_recsys_data.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.write(folder, rows=rows, seed=seed)
    return folder


def recsys_config(data_dir: Path, out: Path, sharing: dict | str = "mmoe", **tabular: Any) -> dict[str, Any]:
    """examples/recsys/config_mmoe.yaml on ``data_dir``, with a tiny tabular encoder."""
    import yaml

    raw = yaml.safe_load((ROOT / "examples" / "recsys" / "config_mmoe.yaml").read_text())
    for split in ("train", "dev", "test"):
        raw["datasets"]["impressions"][split] = str(data_dir / f"{split}.csv")
    raw["model"]["sharing"] = sharing
    raw["model"]["tabular"] = {"hidden_size": 8, "mlp_hidden": 16, **tabular}
    raw["train"].update(output_dir=str(out), max_steps=4, eval_every=2, batch_size=32, progress=False)
    return raw
