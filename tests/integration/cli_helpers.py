"""Running the real ``polytask`` command in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def polytask(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polytask", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env={**__import__("os").environ, "COLUMNS": "200"})


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "polytask", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_in_process(monkeypatch: Any, capsys: Any, *args: str) -> tuple[int, str]:
    """``polytask <args>`` in this process (faster than a subprocess): its exit code and its
    stderr with whitespace collapsed (rich wraps long messages)."""
    import pytest

    from polytask.cli import main

    monkeypatch.setattr(sys, "argv", ["polytask", *map(str, args)])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, " ".join(capsys.readouterr().err.split())
