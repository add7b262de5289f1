"""Experiment tracking: ``train.report_to: [tensorboard, mlflow, wandb]``.

Trackers receive each evaluation's metrics.jsonl line (task metrics, train losses, task weights,
gradient cosines) through the trainer's ``on_evaluation`` hook, and the final dev/test metrics.
Everything is written under ``output_dir`` (``tensorboard/`` event files, an MLflow file store in
``mlruns/``, an offline W&B run in ``wandb/``), so nothing leaves the machine. Under
``torchrun``/``accelerate launch`` only rank 0 opens trackers.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polytask.config import RunConfig
from polytask.extras import require
from polytask.distributed import environment_rank

log = logging.getLogger(__name__)


def scalars(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


class TensorBoardTracker:
    def __init__(self, out: Path, config: RunConfig) -> None:
        require("track", "tensorboard", "torch.utils.tensorboard", feature="train.report_to: tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))
        self.writer.add_text("config", f"```\n{config.model_dump_json(indent=2)}\n```")

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowTracker:
    def __init__(self, out: Path, config: RunConfig) -> None:
        self.mlflow = mlflow = require("track", "mlflow", feature="train.report_to: mlflow")
        # A file store keeps the run a plain folder beside the others, readable without a
        # server or database; MLflow 3 asks for an explicit opt-in to it.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
        mlflow.set_experiment("polytask")
        self.run = mlflow.start_run(run_name=out.name)
        train = config.train.model_dump(mode="json", exclude={"report_to", "stl_baselines"})
        mlflow.log_params({f"train.{k}": v for k, v in train.items()} | {
            "model.encoder": config.model.encoder, "sampler": config.sampler.name,
            "weighting": config.weighting.name, "tasks": ",".join(t.name for t in config.tasks)})

    def log(self, step: int, values: dict[str, float]) -> None:
        # MLflow metric names allow '/', not '|' (used in cosine/<a>|<b>).
        self.mlflow.log_metrics({k.replace("|", "_vs_"): v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


class WandbTracker:
    """Weights & Biases in offline mode only (WANDB_MODE=offline): the run is written under
    ``output_dir/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``."""

    def __init__(self, out: Path, config: RunConfig) -> None:
        wandb = require("track", "wandb", feature="train.report_to: wandb")
        os.environ["WANDB_MODE"] = "offline"  # never reach the network, whatever the environment says
        out.mkdir(parents=True, exist_ok=True)  # else wandb falls back to a temporary directory
        self.run = wandb.init(mode="offline", dir=str(out.resolve()), project="polytask", name=out.name,
                              config=config.model_dump(mode="json"), reinit="create_new")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def log_final(self, values: dict[str, float], report: Path) -> None:
        self.run.summary.update(values)
        if report.is_file():
            self.run.save(str(report), base_path=str(report.parent), policy="now")

    def close(self) -> None:
        self.run.finish()


TRACKERS = {"tensorboard": TensorBoardTracker, "mlflow": MLflowTracker, "wandb": WandbTracker}


class Trackers:
    def __init__(self, trackers: list[Any], out: Path, main_process: bool = True) -> None:
        self.trackers, self.out = trackers, out
        self.main_process = main_process  # False on ranks > 0 of a distributed run

    def log_evaluation(self, step: int, score: float | None, line: dict[str, Any]) -> None:
        for tracker in self.trackers:
            tracker.log(step, scalars(line))

    def log_results(self, results: dict[str, Any]) -> None:
        final = {f"final_{split}/{k}": v for split in ("dev", "test")
                 for k, v in scalars(results.get(split, {})).items()}
        step = int(results.get("best_step") or 0)
        report = self.out / "report.html"
        for tracker in self.trackers:
            if isinstance(tracker, WandbTracker):  # W&B steps only grow: finals go to the summary
                tracker.log_final(final, report)
                continue
            tracker.log(step, final)
            if isinstance(tracker, MLflowTracker) and report.is_file():
                tracker.mlflow.log_artifact(str(report))


@contextlib.contextmanager
def open_trackers(config: RunConfig) -> Iterator[Trackers]:
    out = Path(config.train.output_dir)
    opened = []
    main = environment_rank() == 0
    try:
        for name in config.train.report_to if main else []:
            opened.append(TRACKERS[name](out, config))  # a missing package: MissingExtra
        yield Trackers(opened, out, main)
    finally:
        for tracker in opened:
            tracker.close()
