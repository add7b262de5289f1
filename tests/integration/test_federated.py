"""Federated MTL with Flower: 3 simulated clients, each with its own tasks and data; the
encoder is averaged (FedAvg), heads stay local; every client's tasks beat their untrained
baseline, and only encoder parameters ever reach the server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr")

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, run_in_process, write_config  # noqa: E402
from toy import TASKS, toy_files  # noqa: E402

from polytask.errors import ConfigError  # noqa: E402
from polytask.federation import load_federated_config, run_federated  # noqa: E402


def federated_config(folder: Path, encoder: Path, rounds: int = 3) -> dict:
    for name in ("north", "south", "east"):
        (folder / name).mkdir(exist_ok=True)
    files = {name: toy_files(folder / name, n_train=64, n_dev=32, seed=seed)
             for seed, name in enumerate(["north", "south", "east"], start=1)}
    dataset = lambda f: {"train": str(f["train"]), "dev": str(f["dev"]), "tokens": "tokens"}  # noqa: E731
    return {
        "model": {"encoder": str(encoder), "max_length": 32, "pooling": "mean"},
        "datasets": {"toy": dataset(files["north"])},
        "tasks": [{**TASKS["classification"], "dataset": "toy"},
                  {**TASKS["token_classification"], "dataset": "toy"},
                  {**TASKS["regression"], "dataset": "toy", "normalize_target": True}],
        "train": {"output_dir": str(folder / "run"), "batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.0,
                  "progress": False, "seed": 3},
        "federated": {"rounds": rounds, "local_steps": 15, "clients": [
            {"name": "north", "tasks": ["color", "tags"]},
            {"name": "south", "tasks": ["tags", "size"], "datasets": {"toy": dataset(files["south"])}},
            {"name": "east", "tasks": ["size", "color"], "datasets": {"toy": dataset(files["east"])}},
        ]},
    }


def test_three_clients_all_tasks_beat_their_untrained_baseline(tmp_path, tiny_encoder, monkeypatch):
    sent: list[set[str]] = []
    from polytask.federation.client import LocalClient

    original = LocalClient.shared_arrays
    monkeypatch.setattr(LocalClient, "shared_arrays",
                        lambda self: sent.append(set(arrays := original(self))) or arrays)
    results = run_federated(federated_config(tmp_path, tiny_encoder))
    for name, client in results["clients"].items():
        for task, row in client["tasks"].items():
            assert row["beats_baseline"], (name, task, row)
        assert len(client["rounds"]) == 3
    assert set(results["clients"]["south"]["tasks"]) == {"tags", "size"}
    assert all(keys and all(not k.startswith(("heads", "sharing")) for k in keys) for keys in sent)
    # each client's saved model: the averaged encoder + its own heads, usable by predict
    from polytask.api import predict

    [east] = predict(results["clients"]["east"]["model"], ["the very big red cat"])
    assert set(east) == {"size", "color"}
    saved = json.loads((tmp_path / "run" / "federated.json").read_text())
    assert saved["server"]["train_metrics"]


def test_cli_runs_and_rejects_bad_clients(tmp_path, tiny_encoder, monkeypatch, capsys):

    raw = federated_config(tmp_path, tiny_encoder, rounds=1)
    raw["federated"]["clients"][2]["tasks"] = ["size", "nope"]
    code, stderr = run_in_process(monkeypatch, capsys, "federated", write_config(tmp_path / "bad.yaml", raw))
    assert code == 2
    assert "bad.yaml:" in stderr and "client 'east' names unknown task(s) ['nope']" in stderr
    assert not (tmp_path / "run").exists()
    raw["federated"]["clients"][2]["tasks"] = ["size", "color"]
    good = polytask("federated", write_config(tmp_path / "good.yaml", raw),
                    "--set", "federated.local_steps=2")
    assert good.returncode == 0, good.stderr
    assert "east" in good.stdout and (tmp_path / "run" / "clients" / "east" / "model").is_dir()


def test_config_checks(tmp_path, tiny_encoder):
    raw = federated_config(tmp_path, tiny_encoder)
    raw["federated"]["clients"][1]["tasks"] = raw["federated"]["clients"][2]["tasks"] = ["color"]
    with pytest.raises(ConfigError, match=r"task\(s\) \['size'\] belong to no client"):
        load_federated_config(raw)
    raw["federated"]["clients"][1]["tasks"] = raw["federated"]["clients"][2]["tasks"] = ["size"]
    raw["model"]["sharing"] = "soft"
    with pytest.raises(ConfigError, match="set model.sharing: hard"):
        load_federated_config(raw)


def test_example_config_runs_on_a_tiny_model(tmp_path):
    import re

    from conftest import build_tiny_encoder

    example = Path(__file__).resolve().parents[2] / "examples" / "federated"
    words = {w for path in (example / "data").glob("*_train.jsonl") for line in path.read_text().splitlines()
             for w in re.findall(r"[a-z]+", json.loads(line)["text"].lower())}
    encoder = build_tiny_encoder(tmp_path / "tiny", sorted(words))
    results = run_federated(example / "config.yaml", [
        f"model.encoder={encoder}", f"train.output_dir={tmp_path / 'run'}", "federated.rounds=1",
        "federated.local_steps=2"])
    assert {name: set(c["tasks"]) for name, c in results["clients"].items()} == {
        "bank": {"topic", "sentiment"}, "broker": {"sentiment", "intensity"}, "desk": {"topic", "intensity"}}
