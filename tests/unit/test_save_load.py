"""A loaded model predicts exactly what the in-memory model predicted."""

from __future__ import annotations

import torch
from toy import toy_config

from polytask.config import parse_config
from polytask.data.batches import collate
from polytask.data.features import build_features
from polytask.data.records import Record
from polytask.inference import predict_records
from polytask.models.multitask import MultiTaskModel
from polytask.training.setup import prepare
from polytask.training.trainer import train

ALL = ["classification", "multilabel", "regression", "token_classification"]


def test_save_load_parity(tmp_path, tiny_encoder):
    raw = toy_config(tmp_path, tiny_encoder, ALL, epochs=2, lr=3e-3)
    raw["tasks"][3]["crf"] = True
    raw["tasks"][2]["normalize_target"] = True
    config = parse_config(raw)
    prepared = prepare(config)
    train(config, prepared=prepared)
    model = prepared.model.eval()
    model.save_pretrained(tmp_path / "saved")
    loaded = MultiTaskModel.from_pretrained(tmp_path / "saved")

    records = [Record("x", 1, words="i see a red cat near the tree".split()),
               Record("x", 2, text="a very big green dog")]
    assert predict_records(model, records) == predict_records(loaded, records)

    tasks = list(model.tasks.values())
    batch = collate(build_features(records, tasks, model.tokenizer, 32, False), tasks, 0, False)
    with torch.no_grad():
        before = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        after = loaded(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    for name in before:
        assert torch.equal(before[name], after[name]), name
    assert loaded.tasks["size"].state() == model.tasks["size"].state()
    assert loaded.tasks["tags"].labels == model.tasks["tags"].labels
