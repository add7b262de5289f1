"""TensorBoard event files and an MLflow file-store run, readable by their own libraries."""

from __future__ import annotations

import mlflow
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from toy import toy_config

import polytask


def test_tensorboard_and_mlflow_runs_are_written(tmp_path, tiny_encoder, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=6,
                     eval_every=3, report_to=["tensorboard", "mlflow"])
    results = polytask.train(raw)

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"color/accuracy", "tags/f1", "train_loss/color", "weight/tags"} <= set(tags)
    assert [e.step for e in events.Scalars("color/accuracy")] == [3, 6]

    client = mlflow.MlflowClient(tracking_uri=(tmp_path / "run" / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("polytask")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.params["weighting"] == "equal"
    history = client.get_metric_history(run.info.run_id, "color/accuracy")
    assert [m.step for m in history] == [3, 6]
    assert run.data.metrics["final_test/tags/f1"] == results["test"]["tags/f1"]
