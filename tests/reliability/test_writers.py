"""Directory and file writers: they replace only what polytask wrote, never the source model,
report a full disk cleanly, and honour the umask."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from toy import toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import polytask, run_in_process, write_config  # noqa: E402

from polytask import atomic  # noqa: E402
from polytask.config import parse_config  # noqa: E402
from polytask.errors import CheckpointError, OutputExistsError  # noqa: E402
from polytask.models.multitask import MultiTaskModel  # noqa: E402
from polytask.serving.onnx_export import check_output, export_onnx  # noqa: E402
from polytask.training.setup import prepare  # noqa: E402


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_encoder) -> Path:
    """A run folder with a saved (untrained) model, checkpoints and a metrics log beside it."""
    folder = tmp_path_factory.mktemp("writers")
    torch.set_num_threads(1)
    config = parse_config(toy_config(folder, tiny_encoder, ["classification"]))
    prepare(config).model.save_pretrained(folder / "run" / "model")
    (folder / "run" / "metrics.jsonl").write_text('{"step": 1}\n')
    (folder / "run" / "checkpoints").mkdir()
    return folder / "run"


def test_save_refuses_a_directory_polytask_did_not_write(run_dir, tmp_path):
    model = MultiTaskModel.from_pretrained(run_dir / "model")
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8 my photo")
    with pytest.raises(OutputExistsError, match=f"{mine}.*not written by polytask"):
        model.save_pretrained(mine)
    assert (mine / "cat.jpg").read_bytes() == b"\xff\xd8 my photo"
    model.save_pretrained(run_dir / "model")  # its own earlier save: replaced
    empty = tmp_path / "empty"
    empty.mkdir()
    model.save_pretrained(empty)  # an empty directory may be used
    (empty / "notes.txt").write_text("mine")  # added after the save: not polytask's any more
    with pytest.raises(OutputExistsError, match="notes.txt"):
        model.save_pretrained(empty)
    assert (empty / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("target", ["run", "model", "model/sub", "cwd"])
def test_export_never_touches_the_source_model_even_with_overwrite(run_dir, target, monkeypatch):
    out = {"run": run_dir, "model": run_dir / "model", "model/sub": run_dir / "model" / "sub",
           "cwd": Path(".")}[target]
    monkeypatch.chdir(run_dir.parent)  # `--onnx .` is an ancestor of the source model here
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    with pytest.raises(OutputExistsError, match="source model"):
        check_output(run_dir / "model", out, overwrite=True)
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before


def test_export_cli_refuses_foreign_dir_and_names_the_fix(run_dir, tmp_path, monkeypatch, capsys):
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    code, err = run_in_process(monkeypatch, capsys, "export", run_dir / "model", "--onnx", mine)
    assert code == 2 and str(mine) in err and "--overwrite" in err
    assert (mine / "thesis.tex").read_text() == "years of work"
    code, err = run_in_process(monkeypatch, capsys, "export", run_dir / "model", "--onnx", run_dir)
    assert code == 2 and "source model" in err
    assert (run_dir / "metrics.jsonl").is_file() and (run_dir / "checkpoints").is_dir()


def test_export_dot_is_exit_2_without_traceback(run_dir):
    result = subprocess.run([sys.executable, "-m", "polytask", "export", "model", "--onnx", "."],
                            cwd=run_dir, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "source model" in " ".join(result.stderr.split())


@pytest.mark.slow
def test_export_replaces_its_own_export_and_overwrite_replaces_a_foreign_dir(run_dir, tmp_path):
    out = tmp_path / "onnx"
    export_onnx(run_dir / "model", out)
    export_onnx(run_dir / "model", out)  # an earlier export: replaced without asking
    foreign = tmp_path / "old-stuff"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        export_onnx(run_dir / "model", foreign)
    export_onnx(run_dir / "model", foreign, overwrite=True)
    assert not (foreign / "x.txt").exists() and (foreign / "model.onnx").is_file()


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"),
    RuntimeError("basic_ios::clear: iostream error"),
])
def test_disguised_disk_full_from_torch_save_is_a_clean_error(tmp_path, failure, monkeypatch):
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _path: SimpleNamespace(free=0))
    with pytest.raises(OSError) as raised, atomic.atomic_dir(tmp_path / "ckpt", "checkpoint"):
        raise failure
    assert raised.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == []  # the temp dir is gone


def test_safetensors_disk_full_becomes_checkpoint_error_keeping_earlier(tmp_path, tiny_encoder,
                                                                         monkeypatch):
    from safetensors import SafetensorError

    from polytask.training import checkpoint
    from polytask.training.trainer import train

    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=4, checkpoint_every=2,
                     eval_every=2)
    train(parse_config(raw))
    # Resume over the last steps again (a longer max_steps would be a refused config change).
    shutil.rmtree(tmp_path / "run" / "checkpoints" / "step-00000004")
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())

    def full(*_args, **_kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_model", full)
    with pytest.raises(CheckpointError, match="No space left"):
        train(parse_config(raw), resume=True)
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == before


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_while_exporting_or_saving_exits_2(run_dir, small_disk, monkeypatch, capsys):
    """A real full disk (a 48 kB tmpfs): the model does not fit; exit 2, no leftovers."""
    code, err = run_in_process(monkeypatch, capsys, "export", run_dir / "model", "--onnx",
                               small_disk / "onnx")
    assert code == 2 and "No space left" in err and "Traceback" not in err
    assert list(small_disk.iterdir()) == []
    model = MultiTaskModel.from_pretrained(run_dir / "model")
    with pytest.raises(OSError) as raised:
        model.save_pretrained(small_disk / "model")
    assert raised.value.errno == errno.ENOSPC and list(small_disk.iterdir()) == []
    with open(small_disk / "filler", "wb") as filler, pytest.raises(OSError):
        filler.write(b"x" * (1 << 20))  # the disk is now full to the last byte
    inputs = run_dir.parent / "in.jsonl"
    inputs.write_text('{"text": "red cat"}\n')
    code, err = run_in_process(monkeypatch, capsys, "predict", run_dir / "model", "-i", inputs,
                               "-o", small_disk / "out.jsonl")
    assert code == 2 and "No space left" in err and not (small_disk / "out.jsonl").exists()


def test_written_files_and_dirs_follow_the_umask(run_dir, tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "results.json", "{}")
        MultiTaskModel.from_pretrained(run_dir / "model").save_pretrained(tmp_path / "model")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    for name in ("manifest.json", "model.safetensors", "encoder/config.json"):
        assert stat.S_IMODE((tmp_path / "model" / name).stat().st_mode) == 0o644, name


@pytest.mark.slow
def test_full_disk_during_training_exits_2_and_keeps_earlier_checkpoints(tmp_path, tiny_encoder,
                                                                        small_disk):
    from polytask.training.checkpoint import latest_complete

    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=40, checkpoint_every=2,
                     eval_every=2, keep_checkpoints=40, output_dir=str(small_disk / "run"))
    subprocess.run(["mount", "-o", "remount,size=900k", str(small_disk)], check=True)
    result = polytask("train", write_config(tmp_path / "c.yaml", raw))
    stderr = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in stderr and "No space left" in stderr
    assert latest_complete(small_disk / "run" / "checkpoints") is not None
    assert not [p for p in (small_disk / "run" / "checkpoints").iterdir() if p.name.endswith(".tmp")]
