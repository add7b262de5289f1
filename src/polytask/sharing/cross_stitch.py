"""Cross-stitch networks (Misra et al., 2016): per-task encoder copies mixed after every layer.

Every task has its own copy of the encoder (the first task reads the model's encoder, the
others ``sharing.encoder_copies.<i>``). After each Transformer layer l, task t continues with
``sum_s alpha[l, t, s] * h_s``: a learned T x T matrix per layer, initialised to ``init_self``
on the diagonal and the rest spread evenly, so training starts close to independent copies.
With the identity the copies are exactly independent.

The layers are stepped through one by one, which needs a BERT-like encoder (embeddings +
``encoder.layer``, no decoder); others are rejected with a ConfigError. Every copy runs on
every batch, whatever tasks it asks for. No single tensor is shared, so gradient balancers
need ``weighting.gradients_on: parameters``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from polytask.config import SharingConfig, TaskConfig
from polytask.errors import ConfigError
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing, check_option, transformer_layers
from polytask.sharing.usage import used_parameters


@SHARINGS.register("cross_stitch")
class CrossStitch(Sharing):
    defaults = {"init_self": 0.9}
    has_shared_features = False

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        super().__init__(encoder, tasks, config)
        layers = len(transformer_layers(encoder, self.name))
        if getattr(encoder.config, "is_decoder", False):
            raise ConfigError(f"model.sharing {self.name!r}: the encoder is configured as a decoder")
        self.encoder_copies = nn.ModuleList(copy.deepcopy(encoder) for _ in self.task_names[1:])
        n, own = len(self.task_names), float(self.options["init_self"])
        other = (1.0 - own) / (n - 1) if n > 1 else 0.0
        alpha = torch.full((n, n), other) + torch.eye(n) * (own - other)
        self.alpha = nn.Parameter(alpha.repeat(layers, 1, 1))  # [layers, T, T]

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        value = options["init_self"]
        check_option(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1,
                     config, "init_self", "a number in [0, 1]")
        return options

    def encoders(self) -> list[nn.Module]:
        return [self.encoder, *self.encoder_copies]

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        encoders = self.encoders()
        states = [e.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs.get("token_type_ids"))
                  for e in encoders]
        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=states[0],
                                         attention_mask=inputs["attention_mask"])
        for index, alpha in enumerate(self.alpha):
            stacked = torch.stack([e.encoder.layer[index](h, mask) for e, h in zip(encoders, states)])
            states = list(torch.einsum("ts,s...->t...", alpha.to(stacked.dtype), stacked).unbind(0))
        by_task = dict(zip(self.task_names, states))
        return SharedOutput({name: by_task[name] for name in tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return [p for e in self.encoders() for p in e.parameters() if p.requires_grad]

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        # Through alpha every copy feeds every task.
        return [p for e in self.encoders() for p in used_parameters(e)] + [self.alpha]
