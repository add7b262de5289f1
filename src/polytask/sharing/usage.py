"""Which encoder parameters a hidden state depends on, found by autograd instead of by names.

Parameter names differ between encoders (BERT's ``encoder.layer.3``, the tabular encoder's
``layers.0`` and ``row_mlp``), and some parameters feed no hidden state at all (BERT's pooler,
which polytask's pooling never reads). One forward and backward pass over the encoder's
``dummy_inputs`` answers the question for any encoder; it is run for the model card only.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def used_parameters(encoder: nn.Module, layer: int | None = None) -> list[nn.Parameter]:
    """The parameters (trainable or frozen) of ``encoder`` that its hidden state ``layer``
    (an index into ``hidden_states``; None: ``last_hidden_state``) depends on.

    An encoder that cannot run its dummy inputs is reported whole, with a warning."""
    params = list(encoder.parameters())
    flags = [p.requires_grad for p in params]
    try:
        inputs = {"input_ids": encoder.dummy_inputs["input_ids"].to(params[0].device)}
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):  # dropout draws stay untouched
            for p in params:
                p.requires_grad_(True)
            out = encoder(**inputs, output_hidden_states=layer is not None)
            state = out.last_hidden_state if layer is None else out.hidden_states[layer]
            grads = torch.autograd.grad(state.float().sum(), params, allow_unused=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the probe falls back to "everything"
        log.warning("could not trace which parameters of %s are used (%s); counting all of them",
                    type(encoder).__name__, exc)
        return params
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
    return [p for p, g in zip(params, grads) if g is not None]
