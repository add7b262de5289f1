"""seq2seq tasks: learning a copy task, save/load, per-task vs shared decoders, mixed runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1]))
from conftest import build_tiny_encoder  # noqa: E402
from seq2seq_helpers import EXTRA_WORDS, build_tiny_bart, build_tiny_t5, copy_config, copy_rows  # noqa: E402

from polytask.api import predict  # noqa: E402
from polytask.config import parse_config  # noqa: E402
from polytask.errors import ConfigError, DataValidationError  # noqa: E402
from polytask.inference import load_model, predict_records  # noqa: E402
from polytask.data.records import Record  # noqa: E402
from polytask.training.setup import prepare  # noqa: E402
from polytask.training.trainer import train  # noqa: E402

REVERSE = {"name": "reverse", "type": "seq2seq", "label": "reverse"}
FIRST = {"name": "first", "type": "seq2seq", "label": "first"}
COLOR = {"name": "color", "type": "classification", "label": "color"}


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory) -> Path:
    return build_tiny_bart(tmp_path_factory.mktemp("tiny-bart"))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert-s2s"), EXTRA_WORDS)


def test_encoder_decoder_learns_to_reverse_and_reloads_identically(tmp_path, tiny_bart):
    raw = copy_config(tmp_path, tiny_bart, [REVERSE], max_steps=300, eval_every=300)
    results = train(parse_config(raw))
    assert results["test"]["reverse/exact_match"] >= 0.9
    for key in ("rouge1", "rouge2", "rougeL", "bleu", "chrf"):
        assert f"reverse/{key}" in results["test"]
    inputs = [row["text"] for row in copy_rows(8, seed=5)]
    model = load_model(tmp_path / "run" / "model", device="cpu")
    records = [Record("t", i, text=text) for i, text in enumerate(inputs)]
    greedy = predict_records(model, records)
    again = predict(tmp_path / "run" / "model", inputs)
    assert greedy == again  # a second load generates the same text
    beams = predict_records(load_model(tmp_path / "run" / "model"), records, num_beams=3)
    right = sum(p["reverse"]["text"] == " ".join(reversed(t.split())) for p, t in zip(beams, inputs))
    assert right >= 6
    short = predict_records(model, records, max_new_tokens=1)
    assert all(len(p["reverse"]["text"].split()) <= 1 for p in short)
    with pytest.raises(ConfigError, match="num_beams"):
        predict_records(model, records, num_beams=0)


def test_t5_checkpoint_trains_and_reloads(tmp_path):
    t5 = build_tiny_t5(tmp_path / "t5")
    raw = copy_config(tmp_path, t5, [{**FIRST, "label_smoothing": 0.1}, COLOR], n_train=32,
                      max_steps=6, eval_every=6)
    raw["model"]["pooling"] = "mean"
    results = train(parse_config(raw))
    assert "first/rougeL" in results["test"] and "color/accuracy" in results["test"]
    meta = json.loads((tmp_path / "run" / "model" / "polytask.json").read_text())
    assert meta["tasks"][0]["state"]["decoder"]["kind"] == "seq2seq"
    texts = ["red see", "the big tree"]
    assert predict(tmp_path / "run" / "model", texts, num_beams=2) == \
        predict(tmp_path / "run" / "model", texts, num_beams=2)
    model = load_model(tmp_path / "run" / "model")
    assert type(model.encoder).__name__ == "T5Stack"
    assert not any(name.startswith("heads.first.decoder.model.encoder.") for name, _ in model.named_parameters())


def test_mixed_run_with_bert2bert_decoders(tmp_path, tiny_bert):
    """One encoder-only checkpoint: a warm-started decoder per generation task, a classifier on
    the same encoder; the decoders really are separate and there is one encoder."""
    raw = copy_config(tmp_path, tiny_bert, [REVERSE, FIRST, COLOR], n_train=64, max_steps=30,
                      eval_every=30)
    results = train(parse_config(raw))
    for key in ("reverse/rougeL", "first/exact_match", "color/accuracy", "words/exact_match"):
        assert key in results["test"]
    model = load_model(tmp_path / "run" / "model")
    one, two = model.heads["reverse"].decoder, model.heads["first"].decoder
    assert one is not two
    pairs = list(zip(one.parameters(), two.parameters()))
    assert pairs and all(a.data_ptr() != b.data_ptr() for a, b in pairs)
    # Both were warm-started from the same encoder weights; training on different targets
    # moved them apart (and away from the encoder).
    words = [d.model.base_model.embeddings.word_embeddings.weight for d in (one, two)]
    assert not torch.equal(words[0], words[1])
    assert not torch.equal(words[0], model.encoder.embeddings.word_embeddings.weight)
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {"encoder", "heads"}
    assert sum(1 for m in model.modules() if type(m).__name__ == "BertModel") == 3  # encoder + 2 decoders
    out = predict(tmp_path / "run" / "model", ["red see the cat"])
    assert set(out[0]) == {"reverse", "first", "color"}
    assert isinstance(out[0]["reverse"]["text"], str) and "label" in out[0]["color"]


def test_shared_decoder_is_one_module_with_task_prompts(tmp_path, tiny_bert):
    tasks = [{**REVERSE, "decoder": "shared"}, {**FIRST, "decoder": "shared"}]
    raw = copy_config(tmp_path, tiny_bert, tasks, n_train=32, max_steps=4, eval_every=4)
    raw["weighting"] = "upgrad"  # a gradient method: per-task gradients on the encoder output
    results = train(parse_config(raw))
    assert "first/rougeL" in results["test"]
    model = load_model(tmp_path / "run" / "model")
    assert model.heads["reverse"].decoder is model.heads["first"].decoder
    prompts = {name: model.tasks[name].prompt for name in ("reverse", "first")}
    assert prompts["reverse"] != prompts["first"] and len(prompts["first"]) == 2
    out = predict(tmp_path / "run" / "model", ["red see"])
    assert set(out[0]) == {"reverse", "first"}
    from fastapi.testclient import TestClient

    from polytask.serving import create_app

    with TestClient(create_app(tmp_path / "run" / "model")) as client:  # served with PyTorch
        served = client.post("/predict", json={"inputs": ["red see"]})
    assert served.status_code == 200 and served.json()["predictions"] == out


def test_shared_decoder_needs_distinguishable_task_names(tmp_path, tiny_bert):
    tasks = [{**REVERSE, "name": "zzz", "decoder": "shared"}, {**FIRST, "name": "qqq", "decoder": "shared"}]
    raw = copy_config(tmp_path, tiny_bert, tasks, n_train=8, max_steps=1)
    with pytest.raises(ConfigError, match="tokenize alike"):
        prepare(parse_config(raw))


def test_empty_target_is_a_data_error_with_file_and_line(tmp_path, tiny_bert):
    raw = copy_config(tmp_path, tiny_bert, [REVERSE], n_train=8, max_steps=1)
    train_file = Path(raw["datasets"]["words"]["train"])
    rows = train_file.read_text().splitlines()
    rows[2] = json.dumps({"text": "red see", "reverse": "  "})
    rows[4] = json.dumps({"text": "red see"})
    train_file.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataValidationError) as caught:
        prepare(parse_config(raw))
    message = str(caught.value)
    assert f"{train_file}:3" in message and f"{train_file}:5" in message
    assert "empty target" in message and "reverse" in message


@pytest.mark.parametrize("sharing", ["soft", "mmoe", "hierarchical", "lora"])
def test_generation_trains_under_other_sharing_strategies(tmp_path, tiny_bert, sharing):
    """LoRA injects adapters into the encoder before the decoder is warm-started from it."""
    raw = copy_config(tmp_path, tiny_bert, [REVERSE, COLOR], n_train=16, max_steps=2, eval_every=2)
    raw["model"]["sharing"] = sharing
    raw["weighting"] = {"name": "upgrad",
                        "gradients_on": "parameters" if sharing in ("soft", "lora") else "features"}
    results = train(parse_config(raw))
    assert "reverse/rougeL" in results["test"] and "color/accuracy" in results["test"]
    assert predict(tmp_path / "run" / "model", ["red see"])[0]["reverse"]["text"] is not None
