"""Where tensors run and in which precision: the ``train.device`` name resolved to a torch
device, and the autocast context of ``train.precision``. Used by training, evaluation and
inference alike, so it sits on the ground floor."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA, then Apple's MPS, then the CPU; any other name is torch's device string."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Mixed precision for ``fp16``/``bf16`` on ``device``; nothing for ``fp32``."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
