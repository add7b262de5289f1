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
          resume: bool = False, init_from: str | Path | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train every task of a config (a RunConfig, a YAML path, or a dict). An output_dir that
    holds a run is refused unless ``resume`` (continue it) or ``overwrite`` (remove that run's
    files, never others: polytask.training.run_dir); with ``init_from``
    continue training a saved model, promoted only if no task's dev score drops (see
    ``train.promotion_tolerance``); the decision is in ``results["promotion"]``."""
    from polytask.evaluation.report import write_report_quietly
    from polytask.training.run_dir import check_run_dir
    from polytask.training.tracking import open_trackers
    from polytask.training.trainer import train as run_training

    run_config = _config(config, overrides)
    check_run_dir(Path(run_config.train.output_dir), resume, overwrite)  # before trackers write there
    with open_trackers(run_config) as trackers:
        results = run_training(run_config, resume=resume, init_from=init_from,
                               on_evaluation=trackers.log_evaluation, overwrite=overwrite)
        if trackers.main_process:  # under torchrun/accelerate, rank 0 writes the files
            write_report_quietly(run_config.train.output_dir)  # report.html; a plotting error only warns
        trackers.log_results(results)
    return results


def validate_data(config: RunConfig | str | Path | dict, overrides: list[str] | None = None) -> dict:
    """Read and check every data file of a config; raises DataValidationError listing all problems."""
    records = validate(_config(config, overrides))
    return {ds: {split: len(rows) for split, rows in splits.items()} for ds, splits in records.items()}


def evaluate(model_dir: str | Path, config: RunConfig | str | Path | dict,
             splits: tuple[str, ...] = ("test",)) -> dict[str, dict[str, Any]]:
    return evaluate_model(load_model(model_dir), _config(config), splits)


def predict(model_dir: str | Path, inputs: list[str | list[str] | dict],
            tasks: list[str] | None = None, num_beams: int | None = None,
            max_new_tokens: int | None = None) -> list[dict[str, Any]]:
    """Predictions of every task (or ``tasks``) for texts, word lists, or {"text"/"tokens"} dicts;
    ``num_beams``/``max_new_tokens`` override the generation (seq2seq) tasks' config.
    A tabular model takes dicts of its feature columns."""
    model = load_model(model_dir)
    if hasattr(model.tokenizer, "records_from_rows"):  # tabular: rows of feature columns
        return predict_records(model, model.tokenizer.records_from_rows(inputs), tasks)
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
    return predict_records(model, records, tasks, num_beams=num_beams,
                           max_new_tokens=max_new_tokens)


def relatedness(config: RunConfig | str | Path | dict, steps: int = 25, out: str | Path | None = None,
                overrides: list[str] | None = None, **options: Any) -> dict[str, Any]:
    """Task x task relatedness matrices and a grouping suggestion (see polytask.analysis)."""
    from polytask.analysis import relatedness as measure

    return measure(_config(config, overrides), steps=steps, out=out, **options)


def bench(config: RunConfig | str | Path | dict, methods: list[str], seeds: int = 3,
          out: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """STL baselines and each MTL method over seeds: Δm table, results.md/csv, report.html."""
    from polytask.evaluation.bench import bench as run_bench

    return run_bench(_config(config, overrides), methods, seeds, out)


def report(run_dir: str | Path, relatedness: str | Path | None = None) -> Path:
    """(Re)build RUN_DIR/report.html from the run's metrics, relatedness and bench files."""
    from polytask.evaluation.report import build_report

    return build_report(run_dir, relatedness)
