"""The run directory: a fresh run never mixes with an old one, --overwrite removes only the old
run's files, torn metrics lines and leftovers of killed writes are recovered."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import polytask as polytask_cli  # noqa: E402
from cli_helpers import run_in_process, write_config  # noqa: E402

import polytask  # noqa: E402
from polytask import atomic  # noqa: E402
from polytask.config import parse_config  # noqa: E402
from polytask.errors import CheckpointError, OutputExistsError  # noqa: E402
from polytask.evaluation.alarms import dev_history  # noqa: E402
from polytask.models.multitask import MultiTaskModel  # noqa: E402
from polytask.training.checkpoint import checkpoints  # noqa: E402
from polytask.training.trainer import train  # noqa: E402


def finished_run(tmp_path, tiny_encoder, **options):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=4, checkpoint_every=2,
                     eval_every=2, **options)
    train(parse_config(raw))
    return raw, tmp_path / "run"


def test_fresh_train_into_a_finished_run_is_refused_naming_resume_and_overwrite(
        tmp_path, tiny_encoder, monkeypatch, capsys):
    raw, run = finished_run(tmp_path, tiny_encoder)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    raw["train"]["max_steps"] = 2  # a new config: its step-2 checkpoint would be pruned first
    code, err = run_in_process(monkeypatch, capsys, "train", write_config(tmp_path / "new.yaml", raw))
    assert code == 2 and "--resume" in err and "--overwrite" in err and str(run) in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        polytask.train(raw)


def test_overwrite_removes_only_the_old_runs_files(tmp_path, tiny_encoder):
    raw, run = finished_run(tmp_path, tiny_encoder)
    (run / "NOTES.md").write_text("my notes")
    (run / "relatedness").mkdir()
    (run / "relatedness" / "relatedness.json").write_text("{}")
    raw["train"]["max_steps"] = 2
    result = polytask_cli("train", write_config(tmp_path / "new.yaml", raw), "--overwrite")
    assert result.returncode == 0, result.stderr
    assert (run / "NOTES.md").read_text() == "my notes" and (run / "relatedness" / "relatedness.json").is_file()
    assert [p.name for p in checkpoints(run / "checkpoints")] == ["step-00000002"]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2  # the old run's step-4 lines are gone, not mixed in


def test_overwrite_refuses_when_model_dir_holds_a_user_file(tmp_path, tiny_encoder):
    raw, run = finished_run(tmp_path, tiny_encoder)
    (run / "model" / "calibration.csv").write_text("a,b\n")
    before = sorted(p.name for p in checkpoints(run / "checkpoints"))
    with pytest.raises(OutputExistsError, match="calibration.csv"):
        train(parse_config(raw), overwrite=True)
    assert (run / "model" / "calibration.csv").is_file()
    assert sorted(p.name for p in checkpoints(run / "checkpoints")) == before
    with pytest.raises(Exception, match="pass one of them"):
        train(parse_config(raw), overwrite=True, resume=True)


def test_torn_last_metrics_line_is_dropped_on_resume(tmp_path, tiny_encoder, caplog):
    raw, run = finished_run(tmp_path, tiny_encoder)
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    with open(run / "metrics.jsonl", "a") as log:
        log.write('{"step": 4, "split": "dev", "col')  # killed mid-append
    caplog.set_level(logging.WARNING)
    train(parse_config(raw), resume=True)
    assert "torn last line" in caplog.text
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["split"] == "dev"] == [2, 4]


def test_corrupt_middle_metrics_line_is_a_clear_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 2, "split": "dev"}\nnot json at all\n{"step": 4, "split": "dev"}\n')
    with pytest.raises(CheckpointError, match=rf"{path}:2"):
        dev_history(path)
    path.write_text("\x00\x01 binary garbage")  # a single non-JSON line: treated as torn
    assert dev_history(path) == []


def test_leftovers_of_killed_writes_are_cleaned_and_old_model_restored(tmp_path, tiny_encoder, caplog):
    raw, run = finished_run(tmp_path, tiny_encoder)
    os.replace(run / "model", run / ".model.old")  # killed between the two renames of a swap
    (run / ".model.k2j4h5g6.tmp").mkdir()  # killed while writing the next best model
    (run / "checkpoints" / ".step-00000006.abcd1234.tmp").mkdir()
    (run / ".results.json.zz11yy22.tmp").write_text("{")
    (run / ".keep.me.tmp").write_text("not ours: no 8-character random part")
    caplog.set_level(logging.WARNING)
    MultiTaskModel.from_pretrained(run / "model")  # serve/predict: model/ is back
    assert (run / "model").is_dir() and not (run / ".model.old").exists()
    # Resume over the last steps again (a longer max_steps would be a refused config change).
    shutil.rmtree(run / "checkpoints" / "step-00000004")
    train(parse_config(raw), resume=True)
    names = {p.name for p in run.iterdir()} | {p.name for p in (run / "checkpoints").iterdir()}
    assert not {n for n in names if n.endswith(".tmp") and n != ".keep.me.tmp"}
    assert ".keep.me.tmp" in names and "restored" in caplog.text


def test_a_write_in_progress_is_never_cleaned(tmp_path):
    with atomic.atomic_dir(tmp_path / "model", "model") as tmp:
        (tmp / "weights").write_text("being written")
        assert atomic.recover(tmp_path) == [] and tmp.is_dir()
    assert (tmp_path / "model" / "weights").is_file()


def test_swap_keeps_a_loadable_dir_at_every_instant(tmp_path, monkeypatch):
    """The exchange replaces the directory in one step; where it is missing the fallback's
    crash window (between two renames) is repaired by recover()."""
    final = tmp_path / "model"
    with atomic.atomic_dir(final, "model") as tmp:
        (tmp / "v").write_text("1")
    inode = final.stat().st_ino
    seen = []
    real_rmtree = atomic.shutil.rmtree
    monkeypatch.setattr(atomic.shutil, "rmtree", lambda p, **k: (seen.append((final / "v").read_text()),
                                                                 real_rmtree(p, **k)))
    with atomic.atomic_dir(final, "model") as tmp:
        (tmp / "v").write_text("2")
    assert seen == ["2"] and final.stat().st_ino != inode  # swapped in before the old one went

    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)  # e.g. no renameat2 here
    real_replace = os.replace

    def killed_after_first(src, dst):
        real_replace(src, dst)
        if Path(dst).name == ".model.old":
            raise KeyboardInterrupt  # stands for SIGKILL: no cleanup runs ...
    monkeypatch.setattr(atomic.os, "replace", killed_after_first)
    monkeypatch.setattr(atomic.shutil, "rmtree", lambda *a, **k: None)  # ... not even this
    with pytest.raises(KeyboardInterrupt), atomic.atomic_dir(final, "model") as tmp:
        (tmp / "v").write_text("3")
    monkeypatch.undo()
    assert not final.exists() and (tmp_path / ".model.old").is_dir()
    atomic.recover(tmp_path)
    assert (final / "v").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def save_forever(final: Path, exchange_available: bool) -> None:
    if not exchange_available:
        atomic.exchange = lambda a, b: False
    i = 0
    while True:
        i += 1
        with atomic.atomic_dir(final, "model") as tmp:
            (tmp / "weights.bin").write_bytes(os.urandom(20000 + i % 7))
            (tmp / "config.json").write_text(json.dumps({"i": i}))


@pytest.mark.parametrize("exchange_available", [True, False])
def test_sigkill_during_repeated_saves_always_leaves_a_whole_dir(tmp_path, exchange_available):
    """A child replaces a directory over and over and is SIGKILLed at random instants: the
    directory verifies against its manifest (with the exchange: even before any recovery),
    and recover() leaves nothing else behind."""
    import random
    import signal
    import time

    from polytask.manifest import problems

    final, rng = tmp_path / "model", random.Random(0)
    for round_ in range(12):
        pid = os.fork()
        if pid == 0:  # the child writes until it is killed, and never returns into pytest
            try:
                save_forever(final, exchange_available)
            finally:
                os._exit(1)
        time.sleep(0.05 + rng.random() * 0.1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if exchange_available:
            assert final.is_dir() and problems(final) == [], f"round {round_}"
        atomic.recover(tmp_path)
        assert problems(final) == [] and [p.name for p in tmp_path.iterdir()] == ["model"]


def test_resume_with_a_corrupt_middle_metrics_line_exits_2(tmp_path, tiny_encoder, monkeypatch, capsys):
    raw, run = finished_run(tmp_path, tiny_encoder)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{\"step\": 2, oops", *lines[1:]]) + "\n")
    code, err = run_in_process(monkeypatch, capsys, "train", write_config(tmp_path / "c.yaml", raw),
                               "--resume")
    assert code == 2 and f"{run / 'metrics.jsonl'}:1" in err
