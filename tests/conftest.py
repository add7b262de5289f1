"""Shared fixtures: a tiny random BERT (hidden 32, 2 layers) saved like a real checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

sys.path.insert(0, str(Path(__file__).parent))
from toy import VOCAB  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_encoder(directory: Path, extra_words: list[str] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    words = sorted(set(VOCAB + (extra_words or [])))
    vocab = directory / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(SPECIAL) + len(words), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)
