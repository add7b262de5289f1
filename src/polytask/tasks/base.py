"""The Task interface: what one task type owns (label parsing, head, loss, decoding, metrics).

A task type is one file in this package, registered by name; configs say ``type: <name>``.
Values move through a task in four forms:

- raw      what the reader found in the file (a string, a list of tags, a number...);
- value    ``parse`` turns raw into a clean Python value (label string, float, tag list);
- target   ``encode`` turns a value into what the loss needs for one example (ids, floats),
           using the example's ``word_ids`` (sub-token -> word index) for token tasks;
- tensor   ``collate`` stacks targets of a batch, padding to the batch's sequence length.

Gold values (not targets) are kept for evaluation, so a label never seen in training counts
as an error in the metrics instead of crashing the encoder of labels.

Task types whose targets or heads need more than their config (generation: targets are token
ids, the decoder is copied from the checkpoint) get a ``BuildContext`` through ``bind``, which
``MultiTaskModel`` calls before ``build_head``, both when training starts and when a saved model
is loaded; ``encode`` runs after that. The default ``bind`` does nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from polytask.config import TaskConfig
from polytask.registry import family

TASK_TYPES = family("task type")


@dataclass
class HeadOutput:
    """What a head returns: logits (or values) shaped for its task, and the mask it used."""

    logits: torch.Tensor
    attention_mask: torch.Tensor | None = None


@dataclass
class BuildContext:
    """What ``Task.bind`` receives: the model's tokenizer and encoder, and ``shared``, one dict
    per model where tasks keep modules they share (e.g. one decoder for several tasks)."""

    tokenizer: Any
    encoder: nn.Module
    shared: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    """One task of a run. Subclasses set ``level`` and implement the abstract methods."""

    #: "sequence" heads read the pooled vector [B, H]; "token" heads read all tokens [B, T, H].
    level: ClassVar[str] = "sequence"
    #: Name of the metric used for model selection and early stopping.
    primary_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    #: Values are free text (generation targets), not labels from a set: validation does not
    #: warn about dev/test values never seen in train.
    free_text: ClassVar[bool] = False

    def __init__(self, config: TaskConfig, labels: list[str] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.labels: list[str] = list(labels or config.labels or [])

    @property
    def needs_words(self) -> bool:
        """Whether labels sit on words (word ids from split-into-words tokenization); token-level
        tasks that read every token state without word labels (seq2seq) override it."""
        return self.level == "token"

    @classmethod
    def primary_metric_for(cls, config: TaskConfig) -> str:
        """The primary metric of a task of this type with this config (before it is built)."""
        return cls.primary_metric

    def bind(self, context: BuildContext) -> None:
        """Called before ``build_head`` and ``encode`` with what the model was built from."""

    # ---------------------------------------------------------------- data -> targets
    @abstractmethod
    def parse(self, raw: Any, words: list[str] | None) -> tuple[Any, str | None]:
        """Clean one raw label. Returns ``(value, None)`` or ``(None, problem)``; raw None is
        a missing label (partial labels) and returns ``(None, None)``."""

    def fit(self, train_values: list[Any]) -> None:
        """Learn what the task needs from training values (label set, target statistics)."""

    @abstractmethod
    def encode(self, value: Any, word_ids: list[int | None]) -> Any:
        """One example's training target."""

    @abstractmethod
    def collate(self, targets: list[Any], seq_len: int) -> torch.Tensor:
        """Stack targets (None = unlabelled for this task) into one tensor for the batch."""

    @staticmethod
    def present(targets: list[Any]) -> torch.Tensor:
        return torch.tensor([t is not None for t in targets], dtype=torch.bool)

    # ---------------------------------------------------------------- model side
    @abstractmethod
    def build_head(self, hidden_size: int, dropout: float) -> nn.Module:
        """A fresh head; it maps features to this task's logits."""

    @abstractmethod
    def loss(self, logits: torch.Tensor, target: torch.Tensor, present: torch.Tensor,
             attention_mask: torch.Tensor, head: nn.Module | None = None) -> torch.Tensor:
        """Mean loss over the labelled examples of the batch (``head`` for heads with
        parameters of their own beyond logits, e.g. a CRF)."""

    @abstractmethod
    def decode(self, logits: torch.Tensor, word_ids: list[list[int | None]],
               attention_mask: torch.Tensor, head: nn.Module | None = None) -> list[Any]:
        """Predictions as Python values comparable with gold values (one per example)."""

    def explain(self, logits: torch.Tensor, word_ids: list[list[int | None]],
                attention_mask: torch.Tensor, head: nn.Module | None = None) -> list[dict[str, Any]]:
        """Predictions for ``predict``/serving: the value plus scores where they make sense."""
        return [{"prediction": v} for v in self.decode(logits, word_ids, attention_mask, head)]

    def same(self, prediction: Any, gold: Any) -> bool:
        """Whether a prediction counts as the gold value (for exact match over tasks)."""
        return prediction == gold

    def complete(self, prediction: Any, n_words: int) -> Any:
        """A prediction made from a truncated input, completed to cover every input word
        (token tasks tag the cut-off words); sequence-level predictions stay as they are."""
        return prediction

    def scores(self, logits: torch.Tensor) -> np.ndarray | None:
        """Per-example scores for ranking metrics (AUC); None where a task has none."""
        return None

    @abstractmethod
    def metrics(self, predictions: list[Any], golds: list[Any],
                scores: np.ndarray | None = None) -> dict[str, Any]:
        """Metrics over examples that have a gold value; must include ``primary_metric``.
        ``scores`` are the matching rows of ``scores(logits)`` when the task has them."""

    # ---------------------------------------------------------------- persistence
    def state(self) -> dict[str, Any]:
        """What ``from_state`` needs to rebuild the task in a saved model (JSON-safe)."""
        return {"labels": self.labels}

    def load_state(self, state: dict[str, Any]) -> None:
        self.labels = list(state.get("labels", []))

    @property
    def num_outputs(self) -> int:
        return len(self.labels)


_JSON_NAMES = {list: "an array", tuple: "an array", dict: "an object", type(None): "null"}


def label_text(raw: Any) -> tuple[str | None, str | None]:
    """A raw label as the name of its class, and None; or None and the problem. Strings are
    kept as written (stripped); JSON numbers are named by their value, so 1 and 1.0 are one
    class "1" (2.5 stays "2.5"); booleans keep Python's spelling ("True"). Arrays, objects and
    null are problems: stringifying them would invent a class."""
    if isinstance(raw, str):
        return raw.strip(), None
    if isinstance(raw, bool):
        return str(raw), None
    if isinstance(raw, int):
        return str(raw), None
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None, f"label {raw} is not a finite number"
        return (str(int(raw)) if raw.is_integer() else repr(raw)), None
    kind = _JSON_NAMES.get(type(raw), type(raw).__name__)
    return None, f"a label must be a string or a number, got {kind}"


def build_task(config: TaskConfig, state: dict[str, Any] | None = None) -> Task:
    task = TASK_TYPES.get(config.type)(config)
    if state is not None:
        task.load_state(state)
    return task


def first_subtoken_positions(word_ids: list[int | None]) -> list[tuple[int, int]]:
    """(position, word index) of each word's first sub-token: where a word's label lives."""
    seen: set[int] = set()
    positions = []
    for position, word in enumerate(word_ids):
        if word is not None and word not in seen:
            seen.add(word)
            positions.append((position, word))
    return positions
