"""Hard parameter sharing (Caruana, 1997): every task reads the same encoder output.

The default strategy. Options freeze part of the encoder: ``freeze_layers: k`` freezes the
embeddings and the bottom k Transformer layers, ``freeze_encoder: true`` all of it (only the
heads train). Frozen weights get no gradient and stay out of the optimizer, so they are
bit-unchanged by training.
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.config import SharingConfig, TaskConfig
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing, check_option, transformer_layers


@SHARINGS.register("hard")
class HardSharing(Sharing):
    defaults = {"freeze_layers": 0, "freeze_encoder": False}

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        if self.options["freeze_encoder"]:
            encoder.requires_grad_(False)
        elif self.options["freeze_layers"]:
            layers = transformer_layers(encoder, self.name)
            check_option(self.options["freeze_layers"] <= len(layers), config, "freeze_layers",
                         f"at most the encoder's {len(layers)} layers")
            encoder.embeddings.requires_grad_(False)
            for layer in layers[: self.options["freeze_layers"]]:
                layer.requires_grad_(False)

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        k = options["freeze_layers"]
        check_option(isinstance(k, int) and not isinstance(k, bool) and k >= 0, config,
                     "freeze_layers", "a whole number >= 0")
        check_option(isinstance(options["freeze_encoder"], bool), config, "freeze_encoder", "true or false")
        return options

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        out = self.encoder(**inputs, output_hidden_states=torch.is_grad_enabled())
        hidden = out.last_hidden_state
        if self.options["freeze_encoder"] and torch.is_grad_enabled():
            # Nothing below needs a gradient, but feature-gradient balancers still take per-task
            # gradients w.r.t. the features.
            hidden.requires_grad_(True)
        return SharedOutput({name: hidden for name in tasks}, shared=hidden, hidden_states=out.hidden_states)
