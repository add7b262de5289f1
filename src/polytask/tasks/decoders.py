"""Decoders for generation tasks, built from the run's encoder checkpoint.

Two kinds, both driven by Hugging Face ``generate`` (greedy and beam search):

- ``seq2seq``: the encoder comes from an encoder-decoder checkpoint (T5, BART, Marian...). The
  shared encoder is ``model.get_encoder()``; each decoder is a copy of the checkpoint's full
  ``AutoModelForSeq2SeqLM`` whose encoder is replaced by ``NoEncoder`` (no weights), so it keeps
  the decoder, its embeddings and the LM head. ``generate`` gets the shared encoder's states as
  ``encoder_outputs`` and never calls the encoder.
- ``causal``: the encoder is encoder-only (BERT, MiniLM, RoBERTa, ELECTRA). The decoder is the
  same architecture as ``AutoModelForCausalLM`` with ``is_decoder`` and ``add_cross_attention``,
  warm-started from the encoder's weights with fresh cross-attention: "bert2bert" (Rothe et al.,
  2020), what HF ``EncoderDecoderModel.from_encoder_decoder_pretrained`` does.

A decoder's architecture is rebuilt from its config alone (``kind`` + ``config`` in the task
state), so a saved model loads offline; weights then come from ``model.safetensors``.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    GenerationConfig,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES

from polytask.errors import ConfigError

log = logging.getLogger(__name__)

#: Unregistered attribute of an encoder taken from an encoder-decoder checkpoint: the full
#: pretrained model, whose decoder the generation tasks copy (absent when rebuilt from a save).
PRETRAINED_ATTR = "polytask_pretrained_seq2seq"


def is_seq2seq_config(config: PretrainedConfig) -> bool:
    """True for configs of encoder-decoder checkpoints (T5, BART...) other than HF's generic
    ``EncoderDecoderModel`` (whose encoder is an ordinary encoder-only model)."""
    kind = getattr(config, "model_type", "")
    return kind in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES and kind != "encoder-decoder"


def load_seq2seq_encoder(source: str, options: dict[str, Any]) -> PreTrainedModel:
    """The encoder of an encoder-decoder checkpoint (``options``: from_pretrained's keywords);
    the full model rides along (unregistered) so generation tasks can copy its pretrained decoder."""
    full = AutoModelForSeq2SeqLM.from_pretrained(source, **options)
    encoder = full.get_encoder()
    encoder.__dict__[PRETRAINED_ATTR] = full
    return encoder


def encoder_from_config(config: PretrainedConfig, trust_remote_code: bool = False) -> PreTrainedModel:
    """An encoder with random weights for ``config`` (saved models load their weights next):
    the encoder half of an encoder-decoder architecture, else ``AutoModel``."""
    from transformers import AutoModel

    if is_seq2seq_config(config):
        return AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=trust_remote_code).get_encoder()
    return AutoModel.from_config(config, trust_remote_code=trust_remote_code)


def config_from_dict(data: dict[str, Any]) -> PretrainedConfig:
    data = dict(data)
    return AutoConfig.for_model(data.pop("model_type"), **data)


class NoEncoder(nn.Module):
    """Stands in for the encoder inside a decoder's seq2seq model: the shared encoder's states
    are always passed as ``encoder_outputs``, so this is never run."""

    main_input_name = "input_ids"

    def forward(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a polytask decoder reads the shared encoder's states; pass encoder_outputs")


def _replace_encoder(model: PreTrainedModel) -> PreTrainedModel:
    encoder = model.get_encoder()
    for name, module in model.named_modules():
        if module is encoder:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, attr, NoEncoder())
            return model
    raise ConfigError(f"cannot separate the encoder of {type(model).__name__} from its decoder")


class Decoder(nn.Module):
    """One decoder + LM head. ``logits`` is teacher forcing, ``generate`` greedy/beam search;
    ``kind`` and ``config`` rebuild the architecture (see ``build_decoder``)."""

    kind = ""

    def __init__(self, model: PreTrainedModel, start_id: int, eos_id: int, pad_id: int) -> None:
        super().__init__()
        self.model = model
        self.start_id, self.eos_id, self.pad_id = start_id, eos_id, pad_id
        # One explicit generation config, the same after save/load: a checkpoint's own
        # generation_config.json (length penalties, forced BOS...) does not silently apply.
        model.generation_config = GenerationConfig(
            eos_token_id=eos_id, pad_token_id=pad_id, decoder_start_token_id=start_id,
            do_sample=False)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.model.config.to_dict()}

    def logits(self, decoder_ids: torch.Tensor, decoder_mask: torch.Tensor,
               states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generate(self, prompt: torch.Tensor, states: torch.Tensor, mask: torch.Tensor,
                 num_beams: int, max_new_tokens: int) -> torch.Tensor:
        """Token ids after ``prompt`` ([B, P], the start token and any task prefix)."""
        raise NotImplementedError


class Seq2SeqDecoder(Decoder):
    kind = "seq2seq"

    def logits(self, decoder_ids, decoder_mask, states, mask):
        return self.model(encoder_outputs=BaseModelOutput(last_hidden_state=states),
                          attention_mask=mask, decoder_input_ids=decoder_ids,
                          decoder_attention_mask=decoder_mask, use_cache=False).logits

    def generate(self, prompt, states, mask, num_beams, max_new_tokens):
        out = self.model.generate(encoder_outputs=BaseModelOutput(last_hidden_state=states),
                                  attention_mask=mask, decoder_input_ids=prompt,
                                  num_beams=num_beams, max_new_tokens=max_new_tokens, do_sample=False)
        return out[:, prompt.size(1):]


class CausalDecoder(Decoder):
    kind = "causal"

    def logits(self, decoder_ids, decoder_mask, states, mask):
        return self.model(input_ids=decoder_ids, attention_mask=decoder_mask,
                          encoder_hidden_states=states, encoder_attention_mask=mask,
                          use_cache=False).logits

    def generate(self, prompt, states, mask, num_beams, max_new_tokens):
        # generate() would give a decoder-only model a self-attention cache only; the cross-
        # attention layers need the encoder-decoder cache (else each step fails on its keys).
        config = self.model.config
        cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
        out = self.model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                  encoder_hidden_states=states, encoder_attention_mask=mask,
                                  past_key_values=cache, num_beams=num_beams,
                                  max_new_tokens=max_new_tokens, do_sample=False)
        return out[:, prompt.size(1):]


def _causal_config(encoder_config: PretrainedConfig, layers: int | None) -> PretrainedConfig:
    config = copy.deepcopy(encoder_config)
    config.is_decoder, config.add_cross_attention = True, True
    if layers is not None:
        if layers > config.num_hidden_layers:
            raise ConfigError(f"decoder_layers: {layers} is more than the encoder's "
                              f"{config.num_hidden_layers} layers")
        config.num_hidden_layers = layers  # warm-started from the encoder's bottom layers
    return config


def _warm_causal(encoder: nn.Module, decoder: PreTrainedModel) -> None:
    """Copy the encoder's weights into the decoder; only cross-attention stays fresh. Adapters a
    sharing strategy injected first (peft LoRA: ``base_layer`` + ``lora_*``) are left out."""
    weights = {k.replace(".base_layer.", "."): v for k, v in encoder.state_dict().items()
               if ".lora_" not in k}
    result = decoder.base_model.load_state_dict(weights, strict=False)
    fresh = [k for k in result.missing_keys if "crossattention" not in k]
    if fresh:
        raise ConfigError(f"cannot warm-start a decoder from {type(encoder).__name__}: its weights do "
                          f"not fit the decoder ({fresh[:3]}...); use an encoder-decoder checkpoint")
    log.info("warm-started a %s decoder from the encoder (%d cross-attention tensors fresh)",
             type(decoder).__name__, len(result.missing_keys))


def build_decoder(encoder: nn.Module, token_ids: dict[str, int], saved: dict[str, Any] | None = None,
                  layers: int | None = None) -> Decoder:
    """A decoder for ``encoder``: copied or warm-started from the checkpoint when training
    starts, or from ``saved`` (``Decoder.describe()``) with random weights when a saved model is
    rebuilt. ``token_ids`` holds ``eos`` and ``pad``, and ``start`` for causal decoders;
    ``layers`` shortens a causal decoder to its bottom layers."""
    kind = saved["kind"] if saved else ("seq2seq" if is_seq2seq_config(encoder.config) else "causal")
    if kind == "seq2seq" and layers is not None and saved is None:
        raise ConfigError("decoder_layers applies to decoders built from an encoder-only checkpoint; "
                          "an encoder-decoder checkpoint's decoder is copied whole")
    if kind == "seq2seq":
        template = encoder.__dict__.get(PRETRAINED_ATTR)
        if saved is None and template is not None:
            # Deep copy without the shared encoder (the memo maps it to the stub).
            model = copy.deepcopy(template, memo={id(template.get_encoder()): NoEncoder()})
        else:
            config = config_from_dict(saved["config"]) if saved else encoder.config
            model = _replace_encoder(AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=False))
        start = model.config.decoder_start_token_id
        if start is None:
            raise ConfigError(f"{type(model).__name__}: its config has no decoder_start_token_id")
        return Seq2SeqDecoder(model, start, token_ids["eos"], token_ids["pad"])
    config = config_from_dict(saved["config"]) if saved else _causal_config(encoder.config, layers)
    try:
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=False)
    except ValueError as exc:
        raise ConfigError(
            f"model.encoder: a {config.model_type} encoder has no decoder form with cross-attention "
            f"({exc}); use a BERT-like encoder or an encoder-decoder checkpoint (T5, BART)") from None
    if saved is None:
        _warm_causal(encoder, model)
    return CausalDecoder(model, token_ids["start"], token_ids["eos"], token_ids["pad"])
