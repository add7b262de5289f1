"""The seam between prediction code and whatever computes the logits.

``run_tasks`` / ``predict_records`` only need: the tasks (label maps), the tokenizer, the model
options (max_length), a call that maps the batch tensors to ``{task: logits}``, and for decoders
with parameters of their own (a CRF's transitions) the head of each task. ``MultiTaskModel``
satisfies this, and so does the ONNX Runtime runner (``polytask.serving.onnx_export.OnnxModel``),
so PyTorch and ONNX serving share one prediction code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from transformers import PreTrainedTokenizerBase

from polytask.config import ModelConfig
from polytask.tasks.base import Task


@runtime_checkable
class Predictor(Protocol):
    tasks: dict[str, Task]
    tokenizer: PreTrainedTokenizerBase
    config: ModelConfig
    #: task -> what its decoder needs beyond logits (``head=`` of Task.decode); may be None.
    heads: Mapping[str, Any]
    training: bool

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None = None,
                 tasks: list[str] | None = None) -> dict[str, torch.Tensor]: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


def predictor_device(model: Predictor) -> torch.device:
    """Where the batch tensors must live: the model's parameters' device, else the CPU (ONNX
    Runtime takes NumPy arrays from host memory)."""
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None:
            return first.device
    return torch.device("cpu")
