"""The Python API mirrors the CLI: a documented function per subcommand, same arguments,
Python values back; and ``import polytask`` loads none of the heavy libraries."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from toy import TASKS, toy_config, toy_files

import polytask
from polytask.cli import app
from polytask.errors import ModelDirError

SRC = Path(polytask.__file__).resolve().parents[1]
TEXTS = ["i see a red cat", "a blue dog near the house", "the green bird", "a very big red dog"]
# CLI subcommand -> its Python function (``list`` would shadow the builtin).
SAME_NAME_EXCEPT = {"list": "list_members", "validate-data": "validate_data"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_encoder) -> Path:
    folder = tmp_path_factory.mktemp("api")
    torch.set_num_threads(1)
    polytask.train(toy_config(folder, tiny_encoder, ["classification", "token_classification"],
                              max_steps=2, eval_every=2))
    return folder / "run" / "model"


def test_import_polytask_loads_no_heavy_library():
    code = ("import sys, polytask; heavy = [m for m in ('torch', 'transformers', 'optuna', 'flwr', "
            "'fastapi', 'polytask.api') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(SRC), "PATH": ""})
    assert done.stdout.strip() == "[]"


def test_every_subcommand_has_a_documented_function_with_its_arguments():
    for command in app.registered_commands:
        cli_name = command.name or command.callback.__name__
        name = SAME_NAME_EXCEPT.get(cli_name, cli_name.removesuffix("_cmd"))
        if name == "demo":  # polytask.train(polytask.demo_config_path(), ...) is the demo
            continue
        assert name in polytask.__all__, cli_name
        function = getattr(polytask, name)
        assert function.__doc__ and function.__doc__.strip(), name
        python_args = set(inspect.signature(function).parameters)
        for arg in inspect.signature(command.callback).parameters:
            expected = {"set_": "overrides", "out_dir": "out", "split": "splits", "task": "tasks",
                        "as_json": None}.get(arg, arg)
            if name == "predict" and arg in ("input", "output"):  # Python passes the inputs themselves
                expected = "inputs" if arg == "input" else None
            assert expected is None or expected in python_args, (name, arg)


def test_list_members_names_every_registered_member():
    from polytask.sharing.base import SHARINGS
    from polytask.weighting.base import BALANCERS

    members = polytask.list_members()
    assert members["sharing"] == SHARINGS.names() and "hierarchical" in members["sharing"]
    assert members["weighting"] == BALANCERS.names() and "upgrad" in members["weighting"]
    assert {"sampler", "task type"} <= set(members)


def test_evaluate_defaults_to_the_run_config_and_writes_output(model_dir, tmp_path):
    results = polytask.evaluate(model_dir, splits=["dev", "test"], output=tmp_path / "m.json",
                                overrides=["train.eval_batch_size=3"])
    assert set(results) == {"dev", "test"} and "color/accuracy" in results["test"]
    assert json.loads((tmp_path / "m.json").read_text()) == json.loads(json.dumps(results, default=str))


def test_overrides_apply_to_a_dict_config_without_changing_it(tmp_path, tiny_encoder):
    from polytask.api import _config
    from polytask.errors import ConfigError

    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    config = _config(raw, ["train.lr=0.5"])
    assert config.train.lr == 0.5 and raw["train"]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="not to a RunConfig"):
        _config(config, ["train.lr=0.1"])


def test_info_returns_the_model_card(model_dir):
    card = polytask.info(model_dir)
    assert card["sharing"]["name"] == "hard" and card["encoder"]["hidden_size"] == 32
    assert set(card["tasks"]) == {"color", "tags"}
    for row in card["tasks"].values():
        assert row["total"] == row["trainable"] == row["shared"] + row["own"] and row["own"] > 0
    with pytest.raises(ModelDirError, match="no polytask.json"):
        polytask.info(model_dir.parent)


def test_export_writes_an_onnx_directory_that_predicts_the_same(model_dir, tmp_path):
    from polytask.inference import predict_records
    from polytask.models.multitask import MultiTaskModel
    from polytask.serving.onnx_model import OnnxModel
    from tiny_models import sample_records

    out = polytask.export(model_dir, tmp_path / "onnx")
    assert out == tmp_path / "onnx" and (out / "model.onnx").is_file()
    want = predict_records(MultiTaskModel.from_pretrained(model_dir), sample_records())
    got = predict_records(OnnxModel(out), sample_records())
    assert [p["tags"] for p in got] == [p["tags"] for p in want]
    assert [p["color"]["label"] for p in got] == [p["color"]["label"] for p in want]


def test_serve_returns_the_app_and_runs_it_with_uvicorn(model_dir, monkeypatch):
    from fastapi.testclient import TestClient

    with TestClient(polytask.serve(model_dir, max_inputs=2)) as client:
        ok = client.post("/predict", json={"inputs": TEXTS[:2]})
        assert ok.status_code == 200 and set(ok.json()["predictions"][0]) == {"color", "tags"}
        assert client.post("/predict", json={"inputs": TEXTS[:3]}).status_code == 413  # max_inputs

    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    served = polytask.serve(model_dir, host="0.0.0.0", port=8123, run=True)
    assert calls == [(served, {"host": "0.0.0.0", "port": 8123, "log_level": "info"})]


def test_monitor_returns_and_writes_the_alerts(model_dir, tmp_path):
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    labels = [p["color"]["label"] for p in polytask.predict(model_dir, TEXTS)]
    rules = {"window": {"items": 2},
             "rules": [{"name": "colour", "min_items": 1, "when": [{"task": "color", "equals": labels[0]}]}]}
    alerts = polytask.monitor(rules, stream, tmp_path / "alerts.jsonl", model=model_dir, batch_size=2)
    expected = [[str(i) for i in (w, w + 1) if labels[i] == labels[0]] for w in (0, 2)]
    assert [a["ids"] for a in alerts] == [ids for ids in expected if ids]
    assert [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()] == alerts


def test_tune_two_trials(tmp_path, tiny_encoder):
    import yaml

    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=2, eval_every=2,
                     output_dir=str(tmp_path / "study"))
    raw["tune"] = {"trials": 2, "space": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}
    config = tmp_path / "tune.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = polytask.tune(config, overrides=["train.seed=1"])
    assert result["trials"] == 2 and 1e-4 <= result["best_params"]["train.lr"] <= 1e-2
    best = polytask.load_config(result["best_config"])
    assert best.train.seed == 1 and best.train.lr == result["best_params"]["train.lr"]


def test_federated_two_clients_one_round(tmp_path, tiny_encoder):
    pytest.importorskip("flwr")
    files = {name: toy_files(tmp_path / name, n_train=32, n_dev=16, seed=seed)
             for seed, name in enumerate(["north", "south"], start=1) if (tmp_path / name).mkdir() is None}
    dataset = lambda f: {"train": str(f["train"]), "dev": str(f["dev"]), "tokens": "tokens"}  # noqa: E731
    raw = {
        "model": {"encoder": str(tiny_encoder), "max_length": 32},
        "datasets": {"toy": dataset(files["north"])},
        "tasks": [{**TASKS["classification"], "dataset": "toy"}, {**TASKS["token_classification"], "dataset": "toy"}],
        "train": {"output_dir": str(tmp_path / "run"), "batch_size": 16, "progress": False},
        "federated": {"rounds": 1, "local_steps": 2, "clients": [
            {"name": "north", "tasks": ["color"]},
            {"name": "south", "tasks": ["tags"], "datasets": {"toy": dataset(files["south"])}}]},
    }
    results = polytask.federated(raw, overrides=["train.lr=1e-3"])
    assert results["rounds"] == 1 and set(results["clients"]) == {"north", "south"}
    assert set(results["clients"]["south"]["tasks"]) == {"tags"}
    assert Path(results["clients"]["north"]["model"]).is_dir()


def test_api_functions_are_not_shadowed_by_subpackages():
    """Importing a subpackage sets it as an attribute of `polytask`: no subpackage may carry the
    name of an API function (it made `polytask.monitor(...)` a module once the monitor package was
    imported by an earlier test)."""
    import importlib
    import pkgutil

    subpackages = {m.name for m in pkgutil.iter_modules(polytask.__path__) if m.name != "__main__"}
    for name in subpackages:
        importlib.import_module(f"polytask.{name}")
    assert not subpackages & set(polytask._API)
    for name in polytask._API:
        assert callable(getattr(polytask, name)), name
