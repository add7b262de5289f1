"""The customer-service example from the CLI, on a tiny BERT: train, predict all three tasks
in one call, and the ONNX export refusing a model with a generation task."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from cli_helpers import polytask  # noqa: E402
from conftest import build_tiny_encoder  # noqa: E402

from polytask.errors import ModelDirError  # noqa: E402
from polytask.serving.onnx_export import export_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "customer_service"


def _words() -> list[str]:
    rows = [json.loads(line) for line in (EXAMPLE / "data" / "train.jsonl").read_text().splitlines()]
    return sorted({w for row in rows for w in row["tokens"] + row["reply"].split()})


@pytest.mark.slow
def test_customer_service_example_trains_and_predicts_every_task(tmp_path):
    encoder = build_tiny_encoder(tmp_path / "tiny", _words())
    run = tmp_path / "run"
    result = polytask("train", EXAMPLE / "config.yaml", "--set", f"model.encoder={encoder}",
                      "--set", f"train.output_dir={run}", "--set", "train.max_steps=6",
                      "--set", "train.eval_every=6", "--set", "train.num_threads=1",
                      "--set", "tasks.2.max_target_length=12")
    assert result.returncode == 0, result.stderr
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("intent/accuracy", "slots/f1", "reply/rougeL", "reply/bleu", "support/exact_match"):
        assert key in final
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"text": "please block my visa card"}\n{"text": "track order a17"}\n')
    result = polytask("predict", run / "model", "-i", inputs, "--num-beams", "2", "--max-new-tokens", "5")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    for line in lines:
        predictions = line["predictions"]
        assert set(predictions) == {"intent", "slots", "reply"}
        assert len(predictions["slots"]["tags"]) == len(line["text"].split())
        assert len(predictions["reply"]["text"].split()) <= 5
    with pytest.raises(ModelDirError, match="seq2seq"):  # the CLI maps it to exit 2
        export_onnx(run / "model", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
