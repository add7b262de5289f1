"""The Python API; it mirrors the CLI (``polytask train`` == ``polytask.train``).

Every ``polytask`` subcommand has a function here with the same arguments (``--set`` is
``overrides``, ``polytask list`` is ``list_members``) that returns Python values instead of
printing them. Heavy modules (torch, transformers, optuna, flwr, fastapi) are imported inside
the functions, so ``import polytask`` stays fast.
"""

from __future__ import annotations

import copy
import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from polytask.config import RunConfig
    from polytask.models.multitask import MultiTaskModel

log = logging.getLogger(__name__)


def _config(config: RunConfig | str | Path | dict, overrides: list[str] | None = None) -> RunConfig:
    """A RunConfig from a RunConfig, a dict or a YAML path; ``overrides`` (``--set``) apply to
    the last two (a RunConfig is already validated: change its fields instead)."""
    from polytask.config import RunConfig, load_config, parse_config
    from polytask.errors import ConfigError
    from polytask.yaml_io import apply_overrides

    if isinstance(config, RunConfig):
        if overrides:
            raise ConfigError(f"overrides {overrides} apply to a config file or dict, not to a "
                              "RunConfig; set its fields directly instead")
        return config
    if isinstance(config, dict):
        return parse_config(apply_overrides(copy.deepcopy(config), overrides) if overrides else config)
    return load_config(config, overrides)


def demo_config_path() -> Path:
    return Path(str(resources.files("polytask") / "data" / "demo" / "demo.yaml"))


def train(config: RunConfig | str | Path | dict, overrides: list[str] | None = None,
          resume: bool = False, init_from: str | Path | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train every task of a config (a RunConfig, a YAML path, or a dict). In a dict, a split
    may be a ``datasets.Dataset`` or pandas DataFrame and a dataset a ``DatasetDict``
    (``validation`` is ``dev``): ``{"datasets": {"sst2": {**dsd, "text": "sentence"}}}``. An
    output_dir that holds a run is refused unless ``resume`` (continue it) or ``overwrite``
    (remove that run's files, never others: polytask.training.run_dir). With ``init_from``
    continue training a saved model, promoted only if no task's dev score drops (see
    ``train.promotion_tolerance``); the decision is in ``results["promotion"]``."""
    from polytask.evaluation.report import write_report_quietly
    from polytask.training.run_dir import check_run_dir
    from polytask.training.tracking import open_trackers
    from polytask.training.trainer import train as run_training

    run_config = _config(config, overrides)
    check_run_dir(Path(run_config.train.output_dir), resume, overwrite)  # before trackers write there
    if run_config.train.check_transfer and not resume:  # before any file is written
        from polytask.analysis.precheck import check_transfer

        check_transfer(run_config)
    with open_trackers(run_config) as trackers:
        results = run_training(run_config, resume=resume, init_from=init_from,
                               on_evaluation=trackers.log_evaluation, overwrite=overwrite)
        if trackers.main_process:  # under torchrun/accelerate, rank 0 writes the files
            write_report_quietly(run_config.train.output_dir)  # report.html; a plotting error only warns
        trackers.log_results(results)
    return results


def validate_data(config: RunConfig | str | Path | dict, overrides: list[str] | None = None) -> dict:
    """Read and check every data file (or in-memory table) of a config; raises
    DataValidationError listing all problems. Returns, per dataset and split, the rows read
    and the rows each task can use: ``{dataset: {split: {"rows": n, "usable": {task: n}}}}``."""
    from polytask.data.validation import summary, validate

    run_config = _config(config, overrides)
    return summary(run_config, validate(run_config))


def evaluate(model_dir: str | Path, config: RunConfig | str | Path | dict | None = None,
             splits: tuple[str, ...] | list[str] = ("test",), output: str | Path | None = None,
             overrides: list[str] | None = None, trust_remote_code: bool = False) -> dict[str, dict[str, Any]]:
    """``polytask evaluate``: metrics of the saved model in ``model_dir`` on ``splits`` of a
    config's data (default: the run's ``<model_dir>/../config.yaml``); also written to
    ``output`` as JSON when given. ``trust_remote_code`` as for ``info``."""
    import json

    from polytask.atomic import write_text
    from polytask.inference import check_output_file, check_splits, evaluate_model, load_model

    check_splits(tuple(splits))
    check_output_file(None if output is None else Path(output), "output", "metrics.json")
    model = load_model(model_dir, trust_remote_code=trust_remote_code)
    run_config = _config(Path(model_dir).parent / "config.yaml" if config is None else config, overrides)
    results = evaluate_model(model, run_config, tuple(splits))
    if output is not None:
        write_text(output, json.dumps(results, indent=2, default=str))
    return results


def predict(model_dir: str | Path | MultiTaskModel, inputs: list[str | list[str] | dict] | str,
            tasks: list[str] | None = None, num_beams: int | None = None,
            max_new_tokens: int | None = None, batch_size: int = 64,
            trust_remote_code: bool = False, device: str = "auto") -> list[dict[str, Any]]:
    """``polytask predict`` on inputs in memory (the CLI reads them from a JSONL file): the
    predictions of every task (or ``tasks``) for texts, word lists, or {"text"/"tokens"} dicts;
    ``model_dir`` is a saved model directory (loaded on ``device``) or a loaded MultiTaskModel;
    ``num_beams``/``max_new_tokens`` override the generation (seq2seq) tasks' config.
    A tabular model takes dicts of its feature columns. ``trust_remote_code`` as for ``info``."""
    from polytask.inference import load_model, predict_inputs

    model = model_dir
    if isinstance(model_dir, (str, Path)):
        model = load_model(model_dir, device=device, trust_remote_code=trust_remote_code)
    return predict_inputs(model, inputs, tasks, batch_size, num_beams=num_beams,
                          max_new_tokens=max_new_tokens)


def relatedness(config: RunConfig | str | Path | dict, steps: int = 25, out: str | Path | None = None,
                overrides: list[str] | None = None, pairwise_steps: int = 0, seeds: int = 3,
                **options: Any) -> dict[str, Any]:
    """Task x task relatedness matrices, a grouping suggestion and per-pair advice; with
    ``pairwise_steps`` also the measured transfer matrix over ``seeds`` (see polytask.analysis)."""
    from polytask.analysis import relatedness as measure

    return measure(_config(config, overrides), steps=steps, out=out, pairwise_steps=pairwise_steps,
                   seeds=seeds, **options)


def bench(config: RunConfig | str | Path | dict, methods: list[str], seeds: int = 3,
          out: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """STL baselines and each MTL method over seeds: Δm table, results.md/csv, report.html."""
    from polytask.benchmarking import bench as run_bench

    return run_bench(_config(config, overrides), methods, seeds, out)


def report(run_dir: str | Path, relatedness: str | Path | None = None) -> Path:
    """(Re)build RUN_DIR/report.html from the run's metrics, relatedness and bench files."""
    from polytask.evaluation.report import build_report

    return build_report(run_dir, relatedness)


def list_members() -> dict[str, list[str]]:
    """``polytask list``: every registered member of each pluggable family, ``{family: [names]}``
    (sharing strategies, task types, weighting methods, samplers, data formats...)."""
    import polytask.data.readers  # noqa: F401 - registers data formats
    import polytask.sampling  # noqa: F401 - registers samplers
    import polytask.sharing  # noqa: F401 - registers sharing strategies
    import polytask.tasks  # noqa: F401 - registers task types
    import polytask.weighting  # noqa: F401 - registers balancers
    from polytask.registry import ALL

    return {name: registry.names() for name, registry in sorted(ALL.items())}


def info(model_dir: str | Path, trust_remote_code: bool = False) -> dict[str, Any]:
    """``polytask info``: the model card of a saved model: encoder, sharing strategy, parameter
    counts, and per task the parameters it uses (``total``, ``trainable``, ``shared``, ``own``).
    ``trust_remote_code`` lets an encoder's own Python code run (off: such a model is refused)."""
    from polytask.models.card import model_card
    from polytask.models.multitask import MultiTaskModel

    return model_card(MultiTaskModel.from_pretrained(model_dir, trust_remote_code=trust_remote_code))


def tune(config: str | Path, trials: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """``polytask tune``: search the config's ``tune.space`` with Optuna (TPE + median pruning),
    ``trials`` in the study in total (default ``tune.trials``); rerun to continue the study.
    Returns ``best_value``, ``best_params``, ``best_config`` (the path of best.yaml) and ``trials``."""
    from polytask.tuning import tune as run_search

    return run_search(config, trials, overrides or [])


def export(model_dir: str | Path, onnx: str | Path | None = None, overwrite: bool = False,
           hf: str | Path | None = None) -> Path:
    """``polytask export``, to one of: ``onnx``, one ONNX graph of every task head in that
    directory (self-contained; serve it with ``serve(onnx, onnx=True)``); or ``hf``, standard
    transformers directories, ``hf/encoder`` (AutoModel + tokenizer) and ``hf/<task>`` per task
    (AutoModelForSequenceClassification / AutoModelForTokenClassification, for ``pipeline``; a
    CRF tagger loses its transitions, logged as a warning). Returns the path written. An
    existing output must be an earlier export of the same kind unless ``overwrite``; the source
    model and the directories holding it are never replaced."""
    from polytask.errors import ConfigError

    if (onnx is None) == (hf is None):
        raise ConfigError("export: give one of --onnx DIR or --hf DIR (one export per call)")
    if hf is not None:
        from polytask.models.hf_export import export_hf

        done = export_hf(model_dir, hf, overwrite=overwrite)
        for note in done["notes"]:
            log.warning("%s", note)
        return done["path"]
    from polytask.serving.onnx_export import export_onnx

    return export_onnx(model_dir, onnx, overwrite=overwrite)


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, onnx: bool = False,
          max_batch: int = 32, max_wait_ms: float = 5, max_queue: int = 256, max_inputs: int = 64,
          max_chars: int = 2000, run: bool = False) -> FastAPI:
    """``polytask serve``: the FastAPI app serving every task of ``model_dir`` (with ``onnx``: a
    directory from ``export``); POST /predict, GET /health, /metadata, /docs. With ``run=True``
    it is also served with uvicorn on ``host``:``port`` until stopped, as the CLI does."""
    from polytask.serving import create_app

    app = create_app(model_dir, onnx=onnx, max_batch=max_batch, max_wait_ms=max_wait_ms,
                     max_queue=max_queue, max_inputs=max_inputs, max_chars=max_chars)
    if run:
        import uvicorn

        uvicorn.run(app, host=host, port=port, log_level="info")
    return app


def monitor(rules: str | Path | dict[str, Any], input: str | Path, output: str | Path | None = None,  # noqa: A002
            model: str | Path | None = None, batch_size: int = 64) -> list[dict[str, Any]]:
    """``polytask monitor``: the alerts of ``rules`` (a YAML path or a dict) over the JSONL stream
    ``input``; with ``model`` (a saved model directory) each line's text is predicted first,
    without it each line carries "predictions". Also written to ``output`` (JSONL) when given."""
    from polytask.monitoring import run_monitor

    return run_monitor(rules, input, output, model, batch_size)


def federated(config: str | Path | dict, overrides: list[str] | None = None) -> dict[str, Any]:
    """``polytask federated``: Flower simulation of the config's ``federated:`` clients (each
    trains its own tasks on its own data; FedAvg merges the shared encoder). Returns per client
    its tasks' untrained and final metrics and its model path (also in federated.json)."""
    from polytask.federation import run_federated

    return run_federated(config, overrides or [])
