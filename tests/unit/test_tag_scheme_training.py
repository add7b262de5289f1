"""Schemes through the real loop on a tiny model: POS-like tags with ``scheme: none`` select on
token accuracy; BMES with a CRF predicts well-formed entities after a save/load round trip
and through the ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_models import sample_records
from toy import ANIMALS, COLORS, toy_config

from polytask import api
from polytask.config import parse_config
from polytask.inference import predict_records
from polytask.models.multitask import MultiTaskModel
from polytask.serving.onnx_export import OnnxModel, export_onnx
from polytask.tasks.tag_schemes import ill_formed_at
from polytask.training.trainer import train


def retag(config: dict, tag) -> None:
    """Rewrite the toy files' tags: ``tag(word)`` for each word."""
    for split in ("train", "dev", "test"):
        path = Path(config["datasets"]["toy"][split])
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            row["tags"] = [tag(word) for word in row["tokens"]]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def pos(word: str) -> str:
    return "ADJ" if word in COLORS else "NOUN" if word in ANIMALS else \
        "DET" if word in ("the", "a") else "OTHER"


def dev_lines(run_dir: Path) -> list[dict]:
    lines = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [ln for ln in lines if ln.get("split") == "dev"]


def test_none_scheme_trains_on_pos_tags_and_selects_on_token_accuracy(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["token_classification"], epochs=12, lr=3e-3,
                     eval_every=6)
    raw["tasks"][0]["scheme"] = "none"
    retag(raw, pos)
    results = train(parse_config(raw))
    test = results["test"]
    assert test["tags/token_accuracy"] > 0.9 and test["tags/macro_f1"] > 0.8
    assert "tags/f1" not in test  # no spans, so no span F1
    assert all("tags/f1" not in ln and "tags/token_accuracy" in ln for ln in dev_lines(tmp_path / "run"))
    [out] = api.predict(tmp_path / "run" / "model", [["the", "red", "cat"]], tasks=["tags"])
    assert out["tags"] == {"tags": ["DET", "ADJ", "NOUN"]}


def test_bmes_crf_predictions_are_well_formed_after_loading(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ["token_classification"], epochs=12, lr=3e-3,
                     eval_every=6)
    raw["tasks"][0].update(scheme="bmes", crf=True)
    retag(raw, lambda w: "S-color" if w in COLORS else "S-animal" if w in ANIMALS else "O")
    results = train(parse_config(raw))
    assert results["test"]["tags/f1"] > 0.9
    outs = api.predict(tmp_path / "run" / "model", [["the", "red", "cat", "a"], ["blue", "dog"]],
                       tasks=["tags"])
    for out in outs:
        assert ill_formed_at("bmes", out["tags"]["tags"]) is None
    # words in: located in the words joined by spaces ("blue dog"), word span kept
    assert [{k: v for k, v in e.items() if k != "score"} for e in outs[1]["tags"]["entities"]] == [
        {"type": "color", "word": "blue", "start": 0, "end": 4, "word_start": 0, "word_end": 1},
        {"type": "animal", "word": "dog", "start": 5, "end": 8, "word_start": 1, "word_end": 2}]
    assert all(0 < e["score"] <= 1 for e in outs[1]["tags"]["entities"])
    # The exported model decodes with the same scheme constraint (task state in polytask.json).
    onnx = OnnxModel(export_onnx(tmp_path / "run" / "model", tmp_path / "onnx"), num_threads=1)
    assert onnx.tasks["tags"].constrain and onnx.tasks["tags"].scheme == "bmes"
    records = sample_records()
    assert predict_records(onnx, records) == predict_records(
        MultiTaskModel.from_pretrained(tmp_path / "run" / "model"), records)
