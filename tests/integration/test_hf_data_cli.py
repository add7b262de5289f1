"""``polytask validate-data`` on a headerless TSV with unbalanced quotes (GLUE STS-B style):
the merge is reported with its line and exit 2; with ``quoting: none`` every row is read, and
the output says per split the rows read, the rows each task can use and why others are skipped."""

from __future__ import annotations

import sys

import yaml

from polytask.cli import main


def run(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["polytask", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "200")
    try:
        main()
        code = 0
    except SystemExit as exited:
        code = exited.code
    captured = capsys.readouterr()
    return code, " ".join(captured.out.split()), " ".join(captured.err.split())


def sts_config(tmp_path, encoder, **dataset) -> str:
    lines = [f"{i}\tsentence number {i}\t{i % 5}.0" for i in range(200)]
    lines[10] = '10\t"Quoted start, never closed\t1.0'
    lines[150] = '150\the said "x" then\t0.0'
    lines[20] = "20\tno score here\t"
    (tmp_path / "sts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = {"model": {"encoder": str(encoder)},
           "datasets": {"sts": {"train": "sts.tsv", "header": False, "text": 1, **dataset}},
           "tasks": [{"name": "score", "type": "regression", "dataset": "sts", "label": 2}]}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def test_default_quoting_reports_the_merge_with_its_line(tmp_path, tiny_encoder, monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "validate-data", sts_config(tmp_path, tiny_encoder))
    assert code == 2 and "Traceback" not in err
    assert "sts.tsv:11: [row]" in err and "runs to line 151" in err and "quoting: none" in err


def test_quoting_none_reads_every_row_and_says_what_is_skipped(tmp_path, tiny_encoder, monkeypatch,
                                                               capsys):
    config = sts_config(tmp_path, tiny_encoder, quoting="none")
    code, out, err = run(monkeypatch, capsys, "validate-data", config)
    assert code == 0, err
    assert "train: 200 rows read; score 199 usable, 1 skipped (no label)" in out and "data OK" in out


def test_evaluate_split_validation_on_the_command_line(tmp_path, tiny_encoder, monkeypatch, capsys):
    config = sts_config(tmp_path, tiny_encoder, quoting="none", validation="sts.tsv")
    raw = yaml.safe_load(open(config, encoding="utf-8"))
    raw["model"]["max_length"] = 32
    raw["train"] = {"output_dir": str(tmp_path / "run"), "max_steps": 1, "batch_size": 8,
                    "progress": False}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert run(monkeypatch, capsys, "train", config)[0] == 0
    code, out, err = run(monkeypatch, capsys, "evaluate", tmp_path / "run" / "model",
                         "--split", "validation", "--output", tmp_path / "m.json")
    assert code == 0, err
    assert list(yaml.safe_load((tmp_path / "m.json").read_text())) == ["dev"]
