"""The Python API; it mirrors the CLI (``polytask train`` == ``polytask.train``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from polytask.config import RunConfig, load_config, parse_config
from polytask.data.records import Record
from polytask.data.validation import validate
from polytask.inference import evaluate_model, load_model, predict_records


def _config(config: RunConfig | str | Path | dict, overrides: list[str] | None = None) -> RunConfig:
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config, overrides)


def demo_config_path() -> Path:
    return Path(str(resources.files("polytask") / "data" / "demo" / "demo.yaml"))


def train(config: RunConfig | str | Path | dict, overrides: list[str] | None = None,
          resume: bool = False) -> dict[str, Any]:
    """Train every task of a config (a RunConfig, a YAML path, or a dict)."""
    from polytask.training.trainer import train as run_training

    return run_training(_config(config, overrides), resume=resume)


def validate_data(config: RunConfig | str | Path | dict, overrides: list[str] | None = None) -> dict:
    """Read and check every data file of a config; raises DataValidationError listing all problems."""
    records = validate(_config(config, overrides))
    return {ds: {split: len(rows) for split, rows in splits.items()} for ds, splits in records.items()}


def evaluate(model_dir: str | Path, config: RunConfig | str | Path | dict,
             splits: tuple[str, ...] = ("test",)) -> dict[str, dict[str, Any]]:
    return evaluate_model(load_model(model_dir), _config(config), splits)


def predict(model_dir: str | Path, inputs: list[str | list[str] | dict],
            tasks: list[str] | None = None) -> list[dict[str, Any]]:
    """Predictions of every task (or ``tasks``) for texts, word lists, or {"text"/"tokens"} dicts."""
    records = []
    for i, item in enumerate(inputs):
        if isinstance(item, dict):
            words = item.get("tokens")
            records.append(Record("<inputs>", i + 1, text=item.get("text"), words=words,
                                  text_pair=item.get("text_pair")))
        elif isinstance(item, list):
            records.append(Record("<inputs>", i + 1, words=[str(w) for w in item]))
        else:
            records.append(Record("<inputs>", i + 1, text=str(item)))
    return predict_records(load_model(model_dir), records, tasks)
