"""Chinese end to end on a tiny Chinese-vocabulary BERT built here: headline sentiment (raw
text, no spaces) and character-per-line CoNLL NER, trained together; predict tags each
character of raw Chinese text, and a Latin name inside it stays one word."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import yaml
from transformers import BertConfig, BertModel, BertTokenizerFast

from polytask.api import predict, train
from polytask.config import load_config
from polytask.data.records import split_words

sys.path.insert(0, str(Path(__file__).parent))
from cli_helpers import polytask, run_in_process, write_config  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chinese"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_chinese_encoder(directory: Path) -> Path:
    """A random 2-layer BERT with a WordPiece vocabulary of the example data's characters;
    the tokenizer splits CJK characters (tokenize_chinese_chars) like bert-base-chinese."""
    chars = sorted({ch for path in (EXAMPLE / "data").iterdir()
                    for ch in path.read_text(encoding="utf-8") if ord(ch) > 0x2E80})
    vocab = SPECIAL + ["apple"] + chars
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, tokenize_chinese_chars=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_split_words_keeps_latin_runs_and_splits_cjk():
    assert split_words("我在Apple工作，股价上涨") == ["我", "在", "Apple", "工", "作", "，", "股", "价", "上", "涨"]
    assert split_words("plain  english text") == "plain  english text".split()
    assert split_words("北京 2024年") == ["北", "京", "2024", "年"]


def test_chinese_sentiment_and_ner_learn_and_predict_per_character(tmp_path):
    encoder = tiny_chinese_encoder(tmp_path / "tiny-chinese-bert")
    config = load_config(EXAMPLE / "config.yaml", [
        f"model.encoder={encoder}", f"train.output_dir={tmp_path / 'run'}", "train.epochs=4",
        "train.lr=2e-3", "train.head_lr=2e-3", "train.warmup_ratio=0", "train.progress=false"])
    results = train(config)
    test = results["test"]
    assert test["sentiment/accuracy"] >= 0.9, test
    assert test["entities/f1"] >= 0.8, test
    model_dir = tmp_path / "run" / "model"
    [first] = predict(model_dir, ["今天深圳的Apple股价大跌了"])
    tags = first["entities"]["tags"]
    assert len(tags) == len(["今", "天", "深", "圳", "的", "Apple", "股", "价", "大", "跌", "了"])
    entities = {(e["type"], e["start"], e["end"]) for e in first["entities"]["entities"]}
    assert ("LOC", 2, 4) in entities and ("ORG", 5, 10) in entities, first  # character offsets
    words = {(e["word"], e["word_start"], e["word_end"]) for e in first["entities"]["entities"]}
    assert ("深圳", 2, 4) in words and ("Apple", 5, 6) in words
    assert first["sentiment"]["label"] == "负面"

    # the same from the command line: a UTF-8 JSONL in, per-character tags out
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"text": "北京的华为股价上涨了"}, ensure_ascii=False) + "\n", encoding="utf-8")
    result = polytask("predict", model_dir, "--input", inputs, "--output", tmp_path / "out.jsonl")
    assert result.returncode == 0, result.stderr
    line = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert line["predictions"]["entities"]["tags"][:2] == ["B-LOC", "I-LOC"]
    assert len(line["predictions"]["entities"]["tags"]) == len("北京的华为股价上涨了")


def test_example_config_explains_a_missing_chinese_checkpoint(tmp_path, monkeypatch, capsys):

    raw = yaml.safe_load((EXAMPLE / "config.yaml").read_text(encoding="utf-8"))
    for dataset in raw["datasets"].values():
        for split in ("train", "dev", "test"):
            dataset[split] = str(EXAMPLE / dataset[split])
    raw["train"]["output_dir"] = str(tmp_path / "run")
    code, stderr = run_in_process(monkeypatch, capsys, "train", write_config(tmp_path / "config.yaml", raw))
    assert code == 2
    assert "bert-base-chinese" in stderr and "not a local directory" in stderr
