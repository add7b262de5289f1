"""`polytask monitor` from the command line on a hand-made stream of predictions: exactly the
hand-computed alerts in the output file; a bad stream exits 2 and writes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from test_monitor import RULES, STREAM, item  # noqa: E402

from polytask.cli import main  # noqa: E402


def run(monkeypatch, *args) -> int:
    monkeypatch.setattr(sys, "argv", ["polytask", "monitor", *map(str, args)])
    try:
        main()
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def test_cli_writes_exactly_the_expected_alerts(tmp_path, monkeypatch, capsys):
    import yaml

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({**RULES, "rules": RULES["rules"][:1]}), encoding="utf-8")
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps(row) + "\n" for row in STREAM), encoding="utf-8")
    out = tmp_path / "out" / "alerts.jsonl"
    assert run(monkeypatch, "--rules", rules, "--input", stream, "--output", out) == 0
    alerts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(a["window"]["start"][11:16], a["ids"], a["fired_by"]) for a in alerts] == [
        ("09:00", ["a", "c"], "c"), ("11:00", ["f", "g", "h"], "g")]

    # to stdout without --output
    capsys.readouterr()
    assert run(monkeypatch, "--rules", rules, "--input", stream) == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == alerts

    # a late item (09:30 after 11:07) and a line without predictions: exit 2, nothing written
    bad = tmp_path / "bad.jsonl"
    late = item("z", "2024-05-01T09:30:00Z", "banking", "negative", 0.9, 0.1)
    bad.write_text("".join(json.dumps(r) + "\n" for r in [*STREAM, late, {"id": "y", "time": 1e10}]))
    capsys.readouterr()
    assert run(monkeypatch, "--rules", rules, "--input", bad, "--output", tmp_path / "never.jsonl") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "bad.jsonl:9: [time] out of order" in err and "bad.jsonl:10: [predictions]" in err
    assert not (tmp_path / "never.jsonl").exists()


def test_cli_rejects_bad_rules_with_file_and_line(tmp_path, monkeypatch, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("window: {size: 1h}\nrules:\n  - name: r\n    when: [{task: t, equal: x}]\n")
    stream = tmp_path / "s.jsonl"
    stream.write_text("{}\n")
    assert run(monkeypatch, "--rules", rules, "--input", stream) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "rules.yaml:4: [rules.0.when.0.equal] unknown key (did you mean 'equals'?)" in err
