"""Guards on what polytask loads from an encoder or a saved model directory: Python code only
when the user opts in, weights only as data (safetensors), a tokenizer that fits the encoder's
embeddings, and a ``max_length`` the encoder has position embeddings for."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: How a user opts in to custom code: in a run config, and on the command line.
TRUST_OPTION = "model.trust_remote_code: true"
TRUST_FLAG = "--trust-remote-code"


def refusal(source: str | Path, exc: Exception, opt_in: str) -> str | None:
    """The message for transformers' refusal to run code shipped with a model (we always pass
    ``trust_remote_code`` explicitly, so it refuses instead of prompting); None for other errors."""
    if "trust_remote_code" not in str(exc):
        return None
    return (f"{source} ships custom Python code (an auto_map in its config.json or "
            "tokenizer_config.json), which polytask never runs by default; read that code, and "
            f"only if you trust it, opt in with {opt_in}")


def tokenizer_fingerprint(tokenizer: Any) -> dict[str, Any]:
    """What a saved model records of its tokenizer, to notice missing or swapped files at load."""
    vocab = tokenizer.get_vocab()
    digest = hashlib.sha256(json.dumps(vocab, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return {"size": len(tokenizer), "vocab_sha256": digest}


def tokenizer_problem(tokenizer: Any, embedding_rows: int, saved: dict[str, Any] | None) -> str | None:
    """Why ``tokenizer`` does not belong to an encoder with ``embedding_rows`` token embeddings
    (or to the model that saved ``saved``, its fingerprint); None if it fits. Without a
    fingerprint, a vocabulary may be a little smaller than the embeddings (checkpoints pad
    vocab_size to a round number) but never larger, nor much smaller, nor special tokens only."""
    size = len(tokenizer)
    if saved is not None:
        if tokenizer_fingerprint(tokenizer) == saved:
            return None
        return (f"the tokenizer has {size} tokens and a different vocabulary than the "
                f"{saved.get('size')} tokens the model was trained with")
    if size <= len(set(getattr(tokenizer, "all_special_ids", []))):
        return f"the tokenizer holds only its {size} special tokens (its vocabulary file is missing)"
    if size > embedding_rows or size < embedding_rows - max(128, embedding_rows // 100):
        return f"the tokenizer has {size} tokens, and the encoder embeds {embedding_rows}"
    return None


def position_limit(encoder: Any) -> int | None:
    """The most tokens ``encoder`` has position embeddings for; None without absolute positions
    (T5's relative ones, a tabular encoder)."""
    limit = getattr(encoder.config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    padding_idx = getattr(getattr(encoder, "embeddings", None), "padding_idx", None)
    if isinstance(padding_idx, int):  # RoBERTa-style: positions start after the padding id
        limit -= padding_idx + 1
    return limit


def clamp_max_length(max_length: int, encoder: Any, source: str | Path) -> int:
    """A saved model's max_length, lowered (with a warning) to what its encoder can embed:
    longer inputs are truncated, as they would be at the encoder's limit anyway."""
    limit = position_limit(encoder)
    if limit is None or max_length <= limit:
        return max_length
    log.warning("%s: max_length %d is above the encoder's %d position embeddings; inputs are "
                "truncated to %d tokens", source, max_length, limit, limit)
    return limit


def embedding_rows(encoder: Any) -> int:
    """How many token ids ``encoder`` embeds."""
    try:
        return encoder.get_input_embeddings().num_embeddings
    except (AttributeError, NotImplementedError):
        return encoder.config.vocab_size


def pickle_refusal(source: str | Path, exc: Exception) -> str:
    """The message for a pickle checkpoint (pytorch_model.bin) that holds more than tensors:
    torch.load(weights_only=True) refuses it, and polytask never unpickles arbitrary objects."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0])[:300]
    return (f"{source}: its pickle weights (pytorch_model.bin) do not load as plain tensors "
            f"({reason}); polytask loads weights as data only. Convert the checkpoint to "
            "model.safetensors, where you trust the file: torch.load(path, weights_only=False), "
            "then safetensors.torch.save_file of its tensors")
