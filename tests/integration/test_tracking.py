"""TensorBoard event files, an MLflow file-store run and an offline W&B run, read back."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import mlflow
import pytest
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


def wandb_records(run_file: Path) -> list:
    """The protobuf records of an offline ``run-*.wandb`` file: a 7-byte header, then LevelDB log
    blocks of 32 KiB whose chunks (crc32, length, type) carry the serialised records."""
    from wandb.proto import wandb_internal_pb2

    raw, position, pending, records = run_file.read_bytes(), 7, b"", []
    while position + 7 <= len(raw):
        if (left := 32768 - position % 32768) < 7:  # a block's tail too short for a chunk header
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[position:position + 7])
        if kind == 0:  # zero padding: the file ends inside this block
            break
        pending += raw[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def key(item) -> str:
    return item.key or "/".join(item.nested_key)  # keys holding '/' are stored as nested_key


def test_wandb_offline_run_is_written(tmp_path, tiny_encoder, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "online")  # the tracker must force offline anyway
    monkeypatch.setenv("WANDB_SILENT", "true")
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"], max_steps=4,
                     eval_every=2, report_to=["wandb"])
    raw["weighting"] = "dwa"
    results = polytask.train(raw)

    (run_file,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    # wandb's service process finishes the file after run.finish() returns (at the latest when
    # this process exits): wait for its closing 'exit' record.
    deadline = time.monotonic() + 60
    while not (records := wandb_records(run_file)) or records[-1].WhichOneof("record_type") != "exit":
        assert time.monotonic() < deadline, "the offline run file was never completed"
        time.sleep(0.2)
    history, summary = [], {}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary.update({key(item): json.loads(item.value_json) for item in record.summary.update})
    assert [row["_step"] for row in history] == [2, 4]
    assert {"color/accuracy", "tags/f1", "train_loss/color", "weight/color", "weight/tags"} <= set(history[0])
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert history[1]["color/accuracy"] == metrics[1]["color/accuracy"]
    assert summary["final_test/tags/f1"] == pytest.approx(results["test"]["tags/f1"])
    assert (run_file.parent / "files" / "report.html").exists()
