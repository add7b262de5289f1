"""Predicting and evaluating with a saved model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polytask.config import SPLIT_ALIASES, SPLITS, RunConfig, canonical_split
from polytask.data.features import build_features
from polytask.data.jsonl import json_lines
from polytask.data.records import Record, split_words
from polytask.data.validation import validate
from polytask.device import pick_device
from polytask.errors import ConfigError, DataIssue, DataValidationError
from polytask.evaluation.evaluate import run_tasks, score_tasks
from polytask.models.multitask import MultiTaskModel
from polytask.models.predictor import Predictor
from polytask.tasks.seq2seq import generation_options



def check_output_file(path: Path | None, option: str, example: str) -> None:
    """Refuse, before any work, an output path that cannot become a file."""
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file path, e.g. {path / example}")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a directory; choose another path")


def check_splits(splits: tuple[str, ...]) -> tuple[str, ...]:
    """The splits with ``validation`` read as ``dev``; ConfigError naming any unknown one."""
    unknown = [s for s in splits if canonical_split(s) not in SPLITS]
    if unknown:
        raise ConfigError(f"--split {', '.join(unknown)}: unknown split; choose from "
                          f"{', '.join([*SPLITS, *SPLIT_ALIASES])}")
    return tuple(dict.fromkeys(canonical_split(s) for s in splits))


def load_model(model_dir: str | Path, device: str = "auto", trust_remote_code: bool = False,
               dtype: str | None = None) -> MultiTaskModel:
    return MultiTaskModel.from_pretrained(model_dir, device=pick_device(device),
                                          trust_remote_code=trust_remote_code, dtype=dtype)


def read_inputs(path: Path, tokenizer: Any = None) -> list[Record]:
    """JSONL inputs: each line an object with "text" (and optional "text_pair") or "tokens";
    for a tabular model (``tokenizer`` a FieldVocabulary) an object of its feature columns."""
    records, issues = [], []
    for number, obj in json_lines(path, issues, '{"text": "..."}'):
        if hasattr(tokenizer, "parse_row"):  # tabular: feature columns, checked like training cells
            if (record := tokenizer.parse_row(str(path), number, obj, issues)) is not None:
                records.append(record)
            continue
        words = obj.get("tokens") if isinstance(obj, dict) else None
        text = obj.get("text") if isinstance(obj, dict) else None
        if isinstance(words, str):
            words = words.split()
        if not (isinstance(text, str) and text.strip()) and not (isinstance(words, list) and words):
            issues.append(DataIssue(str(path), number, "text", 'no "text" string or "tokens" list',
                                    'give each line a non-empty "text" or "tokens"'))
            continue
        records.append(Record(str(path), number, text=text, words=words,
                              text_pair=obj.get("text_pair"), fields=obj))
    if issues:
        raise DataValidationError(issues)
    return records


def records_from_inputs(model: Predictor, inputs: list[Any]) -> list[Record]:
    """Records of texts, word lists or {"text"/"tokens"/"text_pair"} dicts (a tabular model:
    dicts of its feature columns), numbered from 1 as lines of ``<inputs>``."""
    if hasattr(model.tokenizer, "records_from_rows"):  # tabular: rows of feature columns
        return model.tokenizer.records_from_rows(inputs)
    if isinstance(inputs, (str, dict)):
        inputs = [inputs]
    records = []
    for i, item in enumerate(inputs, start=1):
        if isinstance(item, dict):
            records.append(Record("<inputs>", i, text=item.get("text"), words=item.get("tokens"),
                                  text_pair=item.get("text_pair")))
        elif isinstance(item, list):
            records.append(Record("<inputs>", i, words=[str(w) for w in item]))
        else:
            records.append(Record("<inputs>", i, text=str(item)))
    return records


def predict_inputs(model: Predictor, inputs: list[Any], tasks: list[str] | None = None,
                   batch_size: int = 32, num_beams: int | None = None,
                   max_new_tokens: int | None = None) -> list[dict[str, Any]]:
    """``predict_records`` on inputs in memory (see ``records_from_inputs``)."""
    return predict_records(model, records_from_inputs(model, inputs), tasks, batch_size,
                           num_beams=num_beams, max_new_tokens=max_new_tokens)


def predict_records(model: Predictor, records: list[Record], tasks: list[str] | None = None,
                    batch_size: int = 64, num_beams: int | None = None,
                    max_new_tokens: int | None = None) -> list[dict[str, Any]]:
    """Every requested task's prediction for each record, one encoder pass per batch;
    ``num_beams``/``max_new_tokens`` override the generation (seq2seq) tasks' config."""
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: must be at least 1")
    names = tasks or list(model.tasks)
    unknown = [n for n in names if n not in model.tasks]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; this model has {list(model.tasks)}")
    chosen = [model.tasks[n] for n in names]
    for record in records:
        if record.words is None and any(t.needs_words for t in chosen):
            record.words = split_words(record.input_text())
    features = build_features(records, chosen, model.tokenizer, model.config.max_length, with_targets=False)
    with generation_options(chosen, num_beams, max_new_tokens):
        results = run_tasks(model, features, chosen, batch_size, explain=True)
    out = [{name: results[name]["predictions"][i] for name in names} for i in range(len(records))]
    for task in chosen:
        if hasattr(task, "locate"):  # token tasks: entities get character offsets in the input
            for record, row in zip(records, out):
                row[task.name] = task.locate(row[task.name], record.words, record.text)
    return out


def evaluate_model(model: MultiTaskModel, config: RunConfig, splits: tuple[str, ...] = ("test",),
                   batch_size: int = 128) -> dict[str, dict[str, Any]]:
    """Metrics of a saved model on the config's data, using the model's own label maps."""
    splits = check_splits(splits)
    missing = [t.name for t in config.tasks if t.name not in model.tasks]
    if missing:
        raise ConfigError(f"the config has task(s) {missing} that the model does not: {list(model.tasks)}")
    records = validate(config, splits)
    results: dict[str, dict[str, Any]] = {}
    for split in splits:
        metrics: dict[str, Any] = {}
        for group in config.datasets:
            tasks = [model.tasks[t.name] for t in config.tasks_of(group)]
            group_records = records[group].get(split, [])
            if not tasks or not group_records:
                continue
            features = build_features(group_records, tasks, model.tokenizer, model.config.max_length,
                                      with_targets=False)
            metrics.update(score_tasks(tasks, features, run_tasks(model, features, tasks, batch_size), group))
        if metrics:
            results[split] = metrics
    if empty := [s for s in splits if s not in results]:
        raise ConfigError(f"--split {', '.join(empty)}: no dataset of the config has labelled data for "
                          f"the model's tasks in that split; set the dataset's {empty[0]}: file")
    return results
