"""Generation (source text -> target text) on the shared encoder: task type ``seq2seq``.

The task reads every encoder state ([B, T, H], ``level = "token"``) but labels no words. Its
head owns a decoder (``tasks/decoders.py``) and passes the encoder states through unchanged,
so gradients reach the shared encoder like any head's; ``loss`` runs the decoder with teacher
forcing (cross-entropy, optional label smoothing) and ``decode`` runs Hugging Face ``generate``
(greedy or beam search) with the encoder states as ``encoder_outputs``.

Targets are token ids from the model's tokenizer (``bind`` gives it): the tokenizer's target
encoding, without a leading start token, ending with EOS, cut to ``max_target_length``. The
decoder starts from a prompt: its start token, plus the task name's tokens when the decoder is
shared by several tasks (``decoder: shared``), which tells it which task to do.

Every row of a seq2seq task's dataset needs a target: an empty one is a data error (file:line).
Generated text and gold targets are compared after a round trip through the tokenizer (an
uncased tokenizer cannot produce capitals, and WordPiece re-spaces punctuation), so the metrics
measure the model, not the tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from polytask.errors import ConfigError
from polytask.tasks.generation_metrics import generation_metrics
from polytask.tasks.decoders import Decoder, build_decoder
from polytask.tasks.base import TASK_TYPES, BuildContext, Task

SHARED_DECODER = "seq2seq/shared_decoder"
SHARED_PROMPTS = "seq2seq/shared_prompts"


class Seq2SeqHead(nn.Module):
    """Holds the task's decoder (possibly shared with other tasks); the forward pass hands the
    encoder states to ``Seq2Seq.loss``/``decode``, which run the decoder."""

    def __init__(self, decoder: Decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return states


@TASK_TYPES.register("seq2seq")
class Seq2Seq(Task):
    level = "token"
    needs_words = False
    free_text = True
    primary_metric = "rougeL"

    def __init__(self, config, labels=None) -> None:
        super().__init__(config, labels)
        self.saved_decoder: dict[str, Any] | None = None  # from a saved model: rebuild this
        self.decoder_spec: dict[str, Any] | None = None
        self.context: BuildContext | None = None
        self.prompt: list[int] = []
        self.overrides: dict[str, int] = {}  # predict-time num_beams / max_new_tokens

    # ---------------------------------------------------------------- data -> targets
    def parse(self, raw: Any, words: list[str] | None) -> tuple[Any, str | None]:
        if raw is None:
            return None, "empty target text; every row of a seq2seq task's dataset needs one"
        if isinstance(raw, (list, dict, bool)):
            return None, f"the target must be a string, got {type(raw).__name__}"
        text = str(raw).strip()
        return (text, None) if text else (None, "empty target text")

    def bind(self, context: BuildContext) -> None:
        tokenizer = context.tokenizer
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        if eos is None or tokenizer.pad_token_id is None:
            raise ConfigError(f"task {self.name!r}: the tokenizer has no end-of-sequence (eos/sep) "
                              "or padding token; generation needs both")
        self.context = context
        self.token_ids = {"eos": eos, "pad": tokenizer.pad_token_id,
                          "start": start if start is not None else eos}

    @property
    def tokenizer(self):
        if self.context is None:
            raise RuntimeError(f"task {self.name!r} is not bound to a model yet (Task.bind)")
        return self.context.tokenizer

    def encode(self, value: Any, word_ids: list[int | None]) -> Any:
        if value is None:
            return None
        ids = list(self.tokenizer(text_target=value)["input_ids"])
        if ids and ids[0] == self.prompt[0]:
            ids = ids[1:]  # the decoder's start token is the prompt, not something to predict
        if not ids or ids[-1] != self.token_ids["eos"]:
            ids.append(self.token_ids["eos"])
        limit = self.config.max_target_length
        return ids if len(ids) <= limit else ids[: limit - 1] + [self.token_ids["eos"]]

    def collate(self, targets: list[Any], seq_len: int) -> torch.Tensor:
        width = max((len(t) for t in targets if t is not None), default=1)
        rows = [[-100] * width if t is None else t + [-100] * (width - len(t)) for t in targets]
        return torch.tensor(rows, dtype=torch.long)

    # ---------------------------------------------------------------- model side
    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        if self.context is None:
            raise RuntimeError(f"task {self.name!r}: bind() must run before build_head()")
        context, shared = self.context, self.config.decoder == "shared"
        if shared and SHARED_DECODER in context.shared:
            decoder = context.shared[SHARED_DECODER]
        else:
            decoder = build_decoder(context.encoder, self.token_ids, self.saved_decoder,
                                    self.config.decoder_layers)
            if shared:
                context.shared[SHARED_DECODER] = decoder
        self.decoder_spec = decoder.describe()
        self.prompt = [decoder.start_id]
        if shared:
            words = self.name.replace("_", " ").replace("-", " ")
            self.prompt += self.tokenizer(words, add_special_tokens=False)["input_ids"]
            prompts = context.shared.setdefault(SHARED_PROMPTS, {})
            if tuple(self.prompt) in prompts:
                raise ConfigError(
                    f"tasks {prompts[tuple(self.prompt)]!r} and {self.name!r} share a decoder but their "
                    "names tokenize alike, so it cannot tell them apart; rename one (use words the "
                    "tokenizer knows) or give it decoder: per_task")
            prompts[tuple(self.prompt)] = self.name
        return Seq2SeqHead(decoder)

    def _prompts(self, rows: int, device: torch.device) -> torch.Tensor:
        return torch.tensor([self.prompt] * rows, dtype=torch.long, device=device)

    def loss(self, logits, target, present, attention_mask, head: Seq2SeqHead | None = None):
        """Teacher forcing: the decoder reads prompt + target[:-1] and predicts the target."""
        states, mask, target = logits[present], attention_mask[present], target[present]
        prompt = self._prompts(target.size(0), target.device)
        inputs = torch.cat([prompt, target[:, :-1]], dim=1)
        inputs_mask = (inputs != -100).long()
        inputs = inputs.masked_fill(inputs == -100, self.token_ids["pad"])
        ignore = torch.full((target.size(0), prompt.size(1) - 1), -100, device=target.device)
        labels = torch.cat([ignore, target], dim=1)
        scores = head.decoder.logits(inputs, inputs_mask, states, mask)
        return F.cross_entropy(scores.float().flatten(0, 1), labels.flatten(), ignore_index=-100,
                               label_smoothing=self.config.label_smoothing)

    @property
    def generation(self) -> dict[str, int]:
        return {"num_beams": self.overrides.get("num_beams", self.config.num_beams),
                "max_new_tokens": self.overrides.get("max_new_tokens", self.config.max_target_length)}

    def decode(self, logits, word_ids, attention_mask, head: Seq2SeqHead | None = None) -> list[Any]:
        if head is None:
            raise ConfigError(f"task {self.name!r}: generation needs the PyTorch model (its decoder)")
        ids = head.decoder.generate(self._prompts(logits.size(0), logits.device), logits,
                                    attention_mask, **self.generation)
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]

    def explain(self, logits, word_ids, attention_mask, head=None) -> list[dict[str, Any]]:
        return [{"text": text} for text in self.decode(logits, word_ids, attention_mask, head)]

    def canonical(self, text: str) -> str:
        """``text`` as the tokenizer can write it: what generated text is compared against."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return " ".join(self.tokenizer.decode(ids, skip_special_tokens=True).split())

    def same(self, prediction: Any, gold: Any) -> bool:
        text = prediction["text"] if isinstance(prediction, dict) else prediction
        return self.canonical(text) == self.canonical(gold)

    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        return generation_metrics([self.canonical(p) for p in predictions],
                                  [self.canonical(g) for g in golds])

    # ---------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        return {"labels": [], "decoder": self.decoder_spec}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.saved_decoder = state.get("decoder")


@contextmanager
def generation_options(tasks: list[Task], num_beams: int | None = None,
                       max_new_tokens: int | None = None) -> Iterator[None]:
    """Override the seq2seq tasks' beam width / generated length for one prediction call."""
    for name, value in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
    chosen = [t for t in tasks if isinstance(t, Seq2Seq)]
    saved = [dict(t.overrides) for t in chosen]
    for task in chosen:
        if num_beams is not None:
            task.overrides["num_beams"] = num_beams
        if max_new_tokens is not None:
            task.overrides["max_new_tokens"] = max_new_tokens
    try:
        yield
    finally:
        for task, before in zip(chosen, saved):
            task.overrides = before
