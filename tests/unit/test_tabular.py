"""Tabular inputs: reading feature columns, the field vocabulary, the tabular encoder, and the
config checks that keep text and tabular apart."""

from __future__ import annotations

import json

import pytest
import torch

from polytask.config import parse_config
from polytask.data.records import Record
from polytask.data.tabular import FieldVocabulary, parse_features
from polytask.data.validation import validate
from polytask.errors import ConfigError, DataValidationError, ModelDirError
from polytask.models.tabular import TabularConfig, TabularEncoder, bi_interaction

HEADER = "user,device,price,click\n"


def tabular_config(tmp_path, train_text: str, fmt: str = "csv", **dataset) -> dict:
    path = tmp_path / f"train.{fmt}"
    path.write_text(train_text, encoding="utf-8")
    return {"model": {"encoder": "tabular"},
            "datasets": {"rows": {"train": str(path), "categorical": ["user", "device"],
                                  "numeric": ["price"], **dataset}},
            "tasks": [{"name": "click", "type": "classification", "dataset": "rows", "label": "click"}]}


def test_csv_rows_become_feature_records_with_missing_values(tmp_path):
    raw = tabular_config(tmp_path, HEADER + "u1,mobile,3.5,1\nu2,,,0\n7,desktop,1e2,\n")
    records = validate(parse_config(raw), ("train",))["rows"]["train"]
    assert [r.features for r in records] == [
        {"user": "u1", "device": "mobile", "price": 3.5},
        {"user": "u2", "device": None, "price": None},
        {"user": "7", "device": "desktop", "price": 100.0}]
    assert [r.fields["click"] for r in records] == ["1", "0", None]
    assert records[0].text is None and records[0].words is None


def test_jsonl_rows_absent_keys_are_missing_and_numbers_are_categories(tmp_path):
    lines = [{"user": 3, "device": "tablet", "price": "4", "click": 1},
             {"user": 3.0, "click": 0}]
    raw = tabular_config(tmp_path, "".join(json.dumps(r) + "\n" for r in lines), fmt="jsonl")
    records = validate(parse_config(raw), ("train",))["rows"]["train"]
    assert records[0].features == {"user": "3", "device": "tablet", "price": 4.0}
    assert records[1].features == {"user": "3", "device": None, "price": None}


def test_bad_cells_and_missing_columns_are_reported_with_file_and_line(tmp_path):
    raw = tabular_config(tmp_path, HEADER + "u1,mobile,cheap,1\nu2,mobile,nan,0\nu3,mobile,2,1\n")
    with pytest.raises(DataValidationError) as caught:
        validate(parse_config(raw), ("train",))
    text = str(caught.value)
    assert "train.csv:2: [price] numeric column 'price' must be a finite number, got 'cheap'" in text
    assert "train.csv:3: [price]" in text and len(caught.value.issues) == 2

    raw = tabular_config(tmp_path, "user,price,click\nu1,2,1\n")
    with pytest.raises(DataValidationError, match=r"train.csv:1: \[device\] missing input column 'device'"):
        validate(parse_config(raw), ("train",))

    lines = [{"user": ["a"], "device": "x", "price": 1, "click": 1}]
    raw = tabular_config(tmp_path, json.dumps(lines[0]) + "\n", fmt="jsonl")
    with pytest.raises(DataValidationError, match=r"train.jsonl:1: \[user\] categorical column 'user'"):
        validate(parse_config(raw), ("train",))


def test_token_tasks_are_refused_on_tabular_datasets(tmp_path):
    raw = tabular_config(tmp_path, HEADER + "u1,mobile,3,1\n")
    raw["tasks"] = [{"name": "tags", "type": "token_classification", "dataset": "rows", "label": "click"}]
    with pytest.raises(DataValidationError, match="token-level task reads words"):
        validate(parse_config(raw), ("train",))


def test_config_keeps_text_and_tabular_apart(tmp_path):
    raw = tabular_config(tmp_path, HEADER)
    raw["model"]["encoder"] = "embedded"
    with pytest.raises(ConfigError, match="need model.encoder: tabular"):
        parse_config(raw)
    raw = tabular_config(tmp_path, HEADER)
    raw["datasets"]["texts"] = {"train": str(tmp_path / "t.jsonl")}
    with pytest.raises(ConfigError, match=r"dataset\(s\) \['texts'\] declare none"):
        parse_config(raw)
    raw = tabular_config(tmp_path, HEADER, numeric=["user"])
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config(raw)
    raw = tabular_config(tmp_path, HEADER)
    raw["model"]["tabular"] = {"attention_layers": 1, "hidden_size": 30, "attention_heads": 4}
    with pytest.raises(ConfigError, match="must divide hidden_size"):
        parse_config(raw)
    raw = tabular_config(tmp_path, HEADER, format="conll")
    with pytest.raises(ConfigError, match="need a csv, tsv or jsonl"):
        parse_config(raw)


def rows(*features: dict) -> list[Record]:
    return [Record("t", i, features=f) for i, f in enumerate(features, 1)]


def test_vocabulary_ids_unknown_values_buckets_and_round_trip(tmp_path):
    train = rows(*({"user": f"u{i % 3}", "price": float(i)} for i in range(30)), {"user": "rare", "price": None})
    vocab = FieldVocabulary.fit(train, ["user"], ["price"], buckets=4, min_count=2)
    user, price = vocab.fields
    assert user.values == ["u0", "u1", "u2"] and len(price.edges) == 3
    assert vocab.vocab_size == 2 + (1 + 3) + (1 + 4)
    unknown = vocab.encode({"user": "rare", "price": None})
    assert unknown == [1, user.offset, price.offset]
    assert vocab.encode({"user": "never seen"}) == unknown
    low, high = vocab.encode({"user": "u1", "price": -5.0}), vocab.encode({"user": "u1", "price": 1e9})
    assert low[1] == user.offset + 2 and low[2] == price.offset + 1 and high[2] == price.offset + 4

    vocab.save_pretrained(tmp_path)
    loaded = FieldVocabulary.from_pretrained(tmp_path)
    probe = [{"user": u, "price": p} for u in ("u0", "u2", "x", None) for p in (0.0, 7.5, 29.0, None)]
    assert [loaded.encode(f) for f in probe] == [vocab.encode(f) for f in probe]
    (tmp_path / "tabular_vocab.json").write_text("{not json")
    with pytest.raises(ModelDirError, match="unreadable tabular vocabulary"):
        FieldVocabulary.from_pretrained(tmp_path)


def test_prediction_rows_are_checked_like_training_cells():
    vocab = FieldVocabulary.fit(rows({"user": "a", "price": 1.0}), ["user"], ["price"])
    records = vocab.records_from_rows([{"user": "a", "price": 2}, {"price": "3.5"}])
    assert [r.features for r in records] == [{"user": "a", "price": 2.0}, {"user": None, "price": 3.5}]
    with pytest.raises(DataValidationError) as caught:
        vocab.records_from_rows(["just text", {"user": "a", "price": "lots"}])
    assert [(i.line, i.field) for i in caught.value.issues] == [(1, "input"), (2, "price")]
    with pytest.raises(DataValidationError, match="this is a tabular model"):
        vocab.encode_records([Record("<request>", 1, text="a text")])
    issues = []
    assert parse_features("f", 1, {"user": {"a": 1}}, ["user"], [], issues) is None and issues


def test_encoder_shapes_hidden_states_and_wrong_width():
    config = TabularConfig(vocab_size=20, num_fields=3, hidden_size=8, mlp_hidden=16,
                           attention_layers=2, attention_heads=2)
    encoder = TabularEncoder(config).eval()
    ids = torch.tensor([[1, 3, 9, 15], [1, 2, 10, 19]])
    out = encoder(ids, torch.ones_like(ids), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 4, 8)
    assert len(out.hidden_states) == config.num_hidden_layers + 1 == 4
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    with pytest.raises(ValueError, match=r"takes \[batch, 4\] ids"):
        encoder(ids[:, :3])
    fields = torch.randn(2, 3, 8)
    pairs = sum(fields[:, i] * fields[:, j] for i in range(3) for j in range(i + 1, 3))
    assert torch.allclose(bi_interaction(fields), pairs, atol=1e-5)


def test_example_data_is_what_the_generator_writes(tmp_path):
    """examples/recsys/data is reproducible: the script writes the same bytes again."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("make_recsys_data", root / "scripts" / "make_recsys_data.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    sizes = generator.write(tmp_path)
    assert (sizes["train"], sizes["dev"], sizes["test"]) == (16000, 2000, 2000)
    for name in ("train.csv", "dev.csv", "test.csv", "predict.jsonl"):
        assert (tmp_path / name).read_bytes() == (root / "examples" / "recsys" / "data" / name).read_bytes(), name
    clicked_only = generator.write(tmp_path / "cvr", rows=200, cvr_clicked_only=True)
    assert "oracle_conversion_auc" not in clicked_only
    lines = (tmp_path / "cvr" / "train.csv").read_text().splitlines()[1:]
    assert all(line.endswith(",") == line.endswith(",0,") for line in lines)  # blank iff no click
