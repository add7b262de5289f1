"""Start-up: ``import polytask``, ``polytask --help`` and a subcommand's ``--help`` load no heavy
library (times live in benchmarks/startup.py; here only what is imported), plus --version and
shell completion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import polytask

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("torch", "transformers", "sklearn", "scipy", "matplotlib", "seqeval", "fastapi", "datasets",
         "pandas", "pyarrow", "optuna", "flwr", "onnxruntime")
PROBE = """
import json, sys
argv = sys.argv[1:]
if argv:
    from polytask.cli import app
    try:
        app(argv, prog_name="polytask", standalone_mode=False)
    except SystemExit:
        pass
else:
    import polytask
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
""" % (HEAVY,)


def loaded(*argv: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    return sorted({m.split(".")[0] for m in json.loads(done.stdout.splitlines()[-1])})


@pytest.mark.parametrize("argv", [(), ("--help",), ("train", "--help"), ("predict", "--help"),
                                  ("serve", "--help")])
def test_start_up_imports_no_heavy_library(argv):
    assert loaded(*argv) == []


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "polytask", *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def test_version_prints_the_package_version():
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"polytask {polytask.__version__}"


def test_shell_completion_script_is_offered():
    done = run_cli("--show-completion", "bash")
    assert done.returncode == 0 and "complete" in done.stdout and "_completion" in done.stdout


def test_commands_still_turn_off_the_weight_loading_bars():
    probe = ("from polytask.cli import _setup_logging; _setup_logging(False); "
             "from transformers.utils import logging; print(logging.is_progress_bar_enabled())")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
