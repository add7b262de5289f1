"""Piped runs (cluster logs, nohup): where the progress bar cannot be drawn, a log line every
``train.log_every`` steps with step, epoch, per-task loss, lr, examples/s and ETA."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

from rich.console import Console
from toy import toy_config

from polytask.config import parse_config
from polytask.training.progress import ProgressBar
from polytask.training.trainer import train

LINE = re.compile(r"step (\d+)/(\d+) epoch ([\d.]+) \| loss (.+) \| lr (\S+) \| ([\d.]+) examples/s \| ETA (\S+)")


def progress_lines(caplog) -> list[re.Match]:
    return [m for r in caplog.records if r.name == "polytask.training.progress"
            and (m := LINE.fullmatch(r.getMessage()))]


def test_non_terminal_stream_gets_a_line_every_log_every_steps(caplog) -> None:
    stream = io.StringIO()  # not a terminal, as under nohup or a batch scheduler
    with caplog.at_level(logging.INFO, logger="polytask.training.progress"):
        with ProgressBar(7, 0, log_every=3, examples_per_step=16, steps_per_epoch=2,
                         out=Console(file=stream)) as bar:
            for step in range(7):
                bar.advance({"color": [1.0 + step], "size": [] if step % 2 else [0.5]}, lr=1e-3)
    lines = progress_lines(caplog)
    assert [int(m[1]) for m in lines] == [3, 6, 7]  # every 3rd step, and the last one
    first = lines[0]
    assert first[2] == "7" and first[3] == "1.50" and first[5] == "0.001" and float(first[6]) > 0
    # each task's mean over the steps since the last line, only over the steps that trained it
    assert first[4] == "color=2.0000 size=0.5000"
    assert lines[1][4] == "color=5.0000 size=0.5000" and lines[2][4] == "color=7.0000 size=0.5000"
    assert re.fullmatch(r"\d+:\d\d:\d\d", first[7])
    assert stream.getvalue() == ""  # no bar drawn into a log file


def test_terminal_shows_the_bar_and_logs_no_lines(caplog) -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    with caplog.at_level(logging.INFO, logger="polytask.training.progress"):
        with ProgressBar(4, 0, log_every=1, out=terminal) as bar:
            for _ in range(4):
                bar.advance({"color": [1.0]}, lr=1e-3)
    assert progress_lines(caplog) == []


def test_piped_training_run_logs_progress(tmp_path: Path, tiny_encoder: Path, caplog) -> None:
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "regression"], max_steps=4, eval_every=4,
                     num_threads=1, progress=True, log_every=2)
    with caplog.at_level(logging.INFO, logger="polytask.training.progress"):
        train(parse_config(raw))  # pytest captures stderr: not a terminal
    lines = progress_lines(caplog)
    assert [(m[1], m[2]) for m in lines] == [("2", "4"), ("4", "4")]
    assert all(re.fullmatch(r"(color|size)=\d+\.\d{4}( (color|size)=\d+\.\d{4})?", m[4]) for m in lines)
    assert lines[0][3] == "0.33"  # 96 examples / batch 16 = 6 steps per epoch
