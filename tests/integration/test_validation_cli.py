"""Bad data: every problem at once, with file:line, exit code 2, and nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, write_config  # noqa: E402
from toy import toy_config  # noqa: E402


def corrupt(path: Path, line: int, change) -> None:
    rows = path.read_text(encoding="utf-8").splitlines()
    rows[line - 1] = change(rows[line - 1])
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def with_field(**fields):
    return lambda text: json.dumps({**json.loads(text), **fields})


CASES = {
    "empty text": ("train.jsonl", 3, with_field(text="", tokens=[])),
    "tag count": ("train.jsonl", 4, with_field(tags=["O"])),
    "unknown label": ("dev.jsonl", 2, with_field(color="purple")),
    "not json": ("train.jsonl", 5, lambda text: text[:-3]),
    "bad regression target": ("train.jsonl", 6, with_field(size="big")),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.slow
def test_bad_row_exit_2_file_line_nothing_written(tmp_path, tiny_encoder, case):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification", "regression"])
    raw["tasks"][0]["labels"] = ["red", "blue", "green"]
    file, line, change = CASES[case]
    corrupt(tmp_path / file, line, change)
    for command in ("train", "validate-data"):
        result = polytask(command, write_config(tmp_path / "c.yaml", raw))
        assert result.returncode == 2, (case, result.stdout, result.stderr)
        assert f"{file}:{line}" in result.stderr.replace("\n", ""), result.stderr
    assert not (tmp_path / "run").exists()


def test_all_problems_reported_at_once(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification", "token_classification"])
    corrupt(tmp_path / "train.jsonl", 2, with_field(tags=["O"]))
    corrupt(tmp_path / "dev.jsonl", 7, lambda text: "{oops")
    raw["datasets"]["toy"]["test"] = str(tmp_path / "missing.jsonl")
    result = polytask("validate-data", write_config(tmp_path / "c.yaml", raw))
    flat = result.stderr.replace("\n", "")
    assert result.returncode == 2
    assert "train.jsonl:2" in flat and "dev.jsonl:7" in flat and "missing.jsonl" in flat


def test_invalid_utf8_and_missing_column(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"])
    data = (tmp_path / "train.jsonl").read_bytes().split(b"\n")
    data[2] = data[2].replace(b"the", b"th\xff", 1) if b"the" in data[2] else data[2] + b"\xff"
    (tmp_path / "train.jsonl").write_bytes(b"\n".join(data))
    raw["tasks"][0]["label"] = "colour"
    result = polytask("train", write_config(tmp_path / "c.yaml", raw))
    flat = result.stderr.replace("\n", "")
    assert result.returncode == 2
    assert "train.jsonl:3" in flat
    assert "colour" in flat
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_existing_run_untouched_by_bad_input(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["classification"], max_steps=3)
    config = write_config(tmp_path / "c.yaml", raw)
    assert polytask("train", config).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    corrupt(tmp_path / "train.jsonl", 1, lambda text: "{broken")
    assert polytask("train", config).returncode == 2
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert before == after
