"""``--resume`` continues the run on disk: a config that would train differently is refused
(each change named, old -> new, nothing written), a few harmless settings may change and are
recorded, and changed tasks or label sets are named instead of a raw RuntimeError."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from toy import TASKS, toy_config

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
from cli_helpers import run_in_process, write_config  # noqa: E402

from polytask.config import parse_config  # noqa: E402
from polytask.errors import ConfigError  # noqa: E402
from polytask.training.trainer import train  # noqa: E402


@pytest.fixture
def finished_run(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=4, eval_every=2,
                     checkpoint_every=2)
    train(parse_config(raw))
    return raw, tmp_path / "run"


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_resume_with_a_changed_lr_is_refused_and_names_the_change(finished_run, tmp_path, monkeypatch, capsys):
    raw, run = finished_run
    before = snapshot(run)
    config = write_config(tmp_path / "config.yaml", raw)
    code, err = run_in_process(monkeypatch, capsys, "train", config, "--resume", "--set", "train.lr=5e-2",
                               "--set", "train.seed=7")
    assert code == 2
    assert "train.lr: 0.001 -> 0.05" in err and "train.seed: 42 -> 7" in err
    assert "Traceback" not in err and snapshot(run) == before  # config.yaml still says 0.001


def test_resume_with_an_added_task_is_refused_before_reading_data(finished_run):
    raw, run = finished_run
    raw["tasks"].append({**TASKS["multilabel"], "dataset": "toy"})
    raw["datasets"]["toy"]["train"] = str(run / "no-such-file.jsonl")  # never read
    with pytest.raises(ConfigError, match=r"tasks\.1\.name: None -> 'animals'"):
        train(parse_config(raw), resume=True)


def test_resume_with_a_new_label_in_the_data_names_the_head(finished_run):
    raw, run = finished_run
    train_file = Path(raw["datasets"]["toy"]["train"])
    train_file.write_text(train_file.read_text() + json.dumps(
        {"text": "a purple cat", "tokens": ["a", "purple", "cat"], "color": "purple"}) + "\n")
    with pytest.raises(ConfigError, match=r"heads\.color\.1\.weight: \(3, 32\) in the checkpoint, \(4, 32\) now"):
        train(parse_config(raw), resume=True)


def test_harmless_changes_are_allowed_and_recorded(finished_run):
    raw, run = finished_run
    raw["train"].update(num_threads=1, eval_batch_size=64)
    train(parse_config(raw), resume=True)
    notes = [json.loads(line) for line in (run / "resumes.jsonl").read_text().splitlines()]
    assert notes[-1]["step"] == 4 and notes[-1]["checkpoint"] == "step-00000004"
    assert notes[-1]["changed"] == {"train.eval_batch_size": {"old": 128, "new": 64},
                                    "train.num_threads": {"old": None, "new": 1}}
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["num_threads"] == 1


def test_a_copied_run_directory_resumes_where_it_now_lives(finished_run, tmp_path):
    raw, run = finished_run
    shutil.copytree(run, tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "checkpoints" / "step-00000004")
    raw["train"]["output_dir"] = str(tmp_path / "copy")
    train(parse_config(raw), resume=True)
    note = json.loads((tmp_path / "copy" / "resumes.jsonl").read_text())
    assert note["step"] == 2 and list(note["changed"]) == ["train.output_dir"]
