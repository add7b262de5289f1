"""The shipped example config and the demo run on the embedded pretrained encoder."""

from __future__ import annotations

import pytest
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_example_three_tasks_two_files(tmp_path):
    result = polytask("train", ROOT / "examples" / "nlu_three_tasks.yaml",
                      "--set", f"train.output_dir={tmp_path}", "--set", "train.max_steps=4",
                      "--set", "train.eval_every=2")
    assert result.returncode == 0, result.stderr
    final = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    for key in ("intent/accuracy", "slots/f1", "domain/accuracy", "nlu/exact_match"):
        assert key in final
    meta = json.loads((tmp_path / "model" / "polytask.json").read_text())
    assert [t["config"]["name"] for t in meta["tasks"]] == ["intent", "slots", "domain"]


@pytest.mark.slow
def test_demo_command_runs(tmp_path):
    result = polytask("demo", "--output-dir", tmp_path / "demo", "--set", "train.max_steps=3")
    assert result.returncode == 0, result.stderr
    assert "demo done" in result.stdout
    assert (tmp_path / "demo" / "model" / "model.safetensors").is_file()
