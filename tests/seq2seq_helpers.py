"""Tiny generation models and data for the seq2seq tests (offline, built from configs)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from conftest import build_tiny_encoder
from toy import COLORS, FILLER, write_jsonl
from transformers import AutoTokenizer, BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration

# Extra words so task names used as shared-decoder prefixes are in the tiny vocabulary.
EXTRA_WORDS = ["copy", "reverse", "first", "last"]


def build_tiny_t5(directory: Path) -> Path:
    """A random tiny T5 (d_model 32) saved like a real checkpoint, with the tiny WordPiece
    tokenizer of conftest (T5 takes no token type ids)."""
    build_tiny_encoder(directory / "tok", EXTRA_WORDS)
    tokenizer = AutoTokenizer.from_pretrained(directory / "tok")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, dropout_rate=0.0,
                      num_heads=2, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_tiny_bart(directory: Path) -> Path:
    """A random tiny BART (d_model 32, learned positions) saved like a real checkpoint."""
    build_tiny_encoder(directory / "tok", EXTRA_WORDS)
    tokenizer = AutoTokenizer.from_pretrained(directory / "tok")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                        decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.0,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.sep_token_id,
                        forced_bos_token_id=None, forced_eos_token_id=None)
    BartForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def copy_rows(n: int, seed: int) -> list[dict[str, Any]]:
    """Source: 2-4 words; targets: the words reversed, and the first word; plus a color label."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(FILLER + COLORS) for _ in range(rng.randint(2, 4))]
        color = next((w for w in words if w in COLORS), "none")
        rows.append({"text": " ".join(words), "reverse": " ".join(reversed(words)),
                     "first": words[0], "color": color})
    return rows


def copy_config(folder: Path, encoder: Path, tasks: list[dict[str, Any]], n_train: int = 256,
                **train: Any) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {split: write_jsonl(folder / f"{split}.jsonl", copy_rows(n, seed))
             for split, n, seed in (("train", n_train, 0), ("dev", 24, 1), ("test", 24, 2))}
    return {
        "model": {"encoder": str(encoder), "max_length": 16, "head_dropout": 0.0},
        "datasets": {"words": {k: str(v) for k, v in files.items()}},
        "tasks": [{"dataset": "words", **t} for t in tasks],
        "train": {"output_dir": str(folder / "run"), "batch_size": 16, "lr": 3e-3, "progress": False,
                  "warmup_ratio": 0.0, "schedule": "constant", "eval_batch_size": 32, **train},
    }
