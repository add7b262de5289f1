"""`polytask serve` refuses bad numbers before loading anything, and every optional import
(serve, onnx, peft, hpo, track, federated, generation) without its extra is exit 2 with the
``pip install 'polytask[...]'`` that fixes it, never a ModuleNotFoundError traceback."""

from __future__ import annotations

import importlib
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import run_in_process  # noqa: E402

import polytask.serving  # noqa: E402
from polytask.extras import MissingExtra, require  # noqa: E402


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--max-batch", "0", "0 is not in the range x>=1"),
    ("--port", "99999", "99999 is not in the range 1<=x<=65535"),
    ("--port", "0", "0 is not in the range 1<=x<=65535"),
    ("--max-queue", "0", "0 is not in the range x>=1"),
    ("--max-inputs", "-3", "-3 is not in the range x>=1"),
    ("--max-chars", "0", "0 is not in the range x>=1"),
    ("--max-wait-ms", "-1", "-1.0 is not in the range 0<=x<=60000"),
    ("--max-wait-ms", "inf", "inf is not in the range"),
    ("--max-wait-ms", "nan", "nan is not a finite number"),
])
def test_serve_refuses_bad_numbers_with_exit_2(monkeypatch, capsys, tmp_path, option, value, said):
    code, err = run_in_process(monkeypatch, capsys, "serve", tmp_path, option, value)
    assert code == 2 and f"Invalid value for '{option}': {said}" in err, err
    assert "Traceback" not in err


def test_serve_on_a_busy_port_or_unknown_host_is_exit_2_before_loading(monkeypatch, capsys, tmp_path):
    """tmp_path is no model: the socket is bound first, so the message is about the port."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = run_in_process(monkeypatch, capsys, "serve", tmp_path, "--port", port)
    assert code == 2 and f"--port {port}: cannot listen there" in err and "pick another --port" in err, err
    code, err = run_in_process(monkeypatch, capsys, "serve", tmp_path, "--host", "no-such-host.invalid")
    assert code == 2 and "--host no-such-host.invalid: cannot listen there" in err, err


def block(monkeypatch, *modules: str) -> None:
    """Make ``import name`` fail as if the package were not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize(("blocked", "args", "extra"), [
    ("uvicorn", ["serve", "{model}"], "serve"),
    ("fastapi", ["serve", "{model}"], "serve"),
    ("onnxruntime", ["serve", "{model}", "--onnx"], "onnx"),
    ("onnxscript", ["export", "{model}/model", "--onnx", "{model}/out"], "onnx"),
])
def test_cli_without_its_extra_is_exit_2_with_the_pip_command(monkeypatch, capsys, tmp_path, blocked, args, extra):
    block(monkeypatch, blocked)
    code, err = run_in_process(monkeypatch, capsys, *[a.format(model=tmp_path) for a in args])
    assert code == 2 and f"pip install 'polytask[{extra}]'" in err and repr(blocked) in err, err
    assert not (tmp_path / "out").exists()


def test_the_server_module_without_fastapi(monkeypatch):
    block(monkeypatch, "fastapi")
    monkeypatch.delitem(sys.modules, "polytask.serving.app")
    monkeypatch.delattr(polytask.serving, "app")
    with pytest.raises(MissingExtra, match=r"pip install 'polytask\[serve\]'"):
        importlib.import_module("polytask.serving.app")


def _sites(tmp_path: Path):
    """(what fails without the package, the package, its extra) for every optional import."""
    from polytask.tasks.generation_metrics import _libraries
    from polytask.federation.simulation import _flower
    from polytask.serving.onnx_export import export_onnx
    from polytask.serving.onnx_model import OnnxModel
    from polytask.sharing.lora import LoraSharing
    from polytask.training.tracking import MLflowTracker, TensorBoardTracker, WandbTracker
    from polytask.tuning import _optuna

    return [
        (lambda: LoraSharing(None, None, None), "peft", "peft"),
        (lambda: OnnxModel(tmp_path), "onnxruntime", "onnx"),
        (lambda: export_onnx(tmp_path / "model", tmp_path / "out"), "onnx", "onnx"),
        (_optuna, "optuna", "hpo"),
        (_libraries, "sacrebleu", "generation"),
        (_libraries, "rouge_score", "generation"),
        (_flower, "flwr", "federated"),
        (lambda: TensorBoardTracker(tmp_path, None), "tensorboard", "track"),
        (lambda: MLflowTracker(tmp_path, None), "mlflow", "track"),
        (lambda: WandbTracker(tmp_path, None), "wandb", "track"),
    ]


@pytest.mark.parametrize("site", range(10))
def test_every_optional_import_names_its_extra(monkeypatch, tmp_path, site):
    needs, package, extra = _sites(tmp_path)[site]
    block(monkeypatch, package)
    with pytest.raises(MissingExtra, match=rf"'{package}'.*pip install 'polytask\[{extra}\]'"):
        needs()


def test_require_returns_the_first_module_and_names_a_missing_one():
    assert require("serve", "json", "os") is importlib.import_module("json")
    with pytest.raises(MissingExtra, match=r"polytask tune needs the package 'no_such_pkg_x'.*polytask\[hpo\]"):
        require("hpo", "json", "no_such_pkg_x", feature="polytask tune")
