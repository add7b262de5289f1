"""The finance-monitor example on a tiny model: train topic + sentiment + intensity on the
project-written posts, then `polytask monitor --model` over the day's stream; the alerts equal
those of the predictions path (predict first, then monitor the predictions), and the planted
burst of negative banking news (10:00-11:00) fires."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask  # noqa: E402
from conftest import build_tiny_encoder  # noqa: E402

from polytask.api import predict, train  # noqa: E402
from polytask.config import load_config  # noqa: E402
from polytask.monitoring import run_monitor  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "finance_monitor"
ROOT = EXAMPLE.parents[1]


def test_generator_is_deterministic_and_small(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_finance_data import write

    write(tmp_path)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "stream.jsonl"):
        assert (tmp_path / name).read_bytes() == (EXAMPLE / "data" / name).read_bytes(), name
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 1_000_000


def test_finance_monitor_end_to_end(tmp_path):
    words = {w for line in (EXAMPLE / "data" / "train.jsonl").read_text().splitlines()
             for w in re.findall(r"[a-z]+", json.loads(line)["text"].lower())}
    encoder = build_tiny_encoder(tmp_path / "tiny", sorted(words))
    config = load_config(EXAMPLE / "config.yaml", [
        f"model.encoder={encoder}", f"train.output_dir={tmp_path / 'run'}", "train.max_steps=150",
        "train.eval_every=75", "train.lr=3e-3", "train.head_lr=3e-3", "train.warmup_ratio=0",
        "train.progress=false"])
    results = train(config)
    assert results["test"]["topic/accuracy"] > 0.9 and results["test"]["sentiment/accuracy"] > 0.9, results
    model = tmp_path / "run" / "model"

    alerts_file = tmp_path / "alerts.jsonl"
    cli = polytask("monitor", "--model", model, "--rules", EXAMPLE / "rules.yaml",
                   "--input", EXAMPLE / "data" / "stream.jsonl", "--output", alerts_file)
    assert cli.returncode == 0, cli.stderr
    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]

    # the predictions path: predict every line, then monitor the predictions alone
    stream = [json.loads(line) for line in (EXAMPLE / "data" / "stream.jsonl").read_text().splitlines()]
    predictions = predict(model, [{"text": row["text"]} for row in stream])
    predicted = tmp_path / "predicted.jsonl"
    predicted.write_text("".join(json.dumps({**row, "predictions": p}) + "\n"
                                 for row, p in zip(stream, predictions)))
    assert run_monitor(EXAMPLE / "rules.yaml", predicted) == alerts

    burst = [a for a in alerts if a["rule"] == "banking_negative_burst"
             and a["window"]["start"] == "2024-05-06T10:00:00+00:00"]
    assert burst and burst[0]["count"] >= 3, alerts
    planted = {row["id"] for row in stream if row["time"].startswith("2024-05-06T10:")
               and any(n in row["text"] for n in ("Northbank", "Crestline", "Harbor", "Meridian"))}
    assert set(burst[0]["ids"]) <= planted
