"""Per-task LoRA adapters (Hu et al., 2021) on a frozen shared backbone, through peft.

Every task gets its own low-rank adapters (options ``r``, ``alpha``, ``dropout``,
``target_modules``, default ``[query, value]``) injected into the one encoder; the backbone is
frozen, so its weights are bit-unchanged by training and only adapters and heads learn.

A forward pass for task t activates adapter t, so each requested task costs one encoder pass:
tasks reading the same dataset no longer share one pass per batch (inherent: their encoders
differ). Prediction of several tasks runs one pass per task in the same call. Adapters train at
``train.lr`` (they live inside the encoder); LoRA usually wants a larger one (1e-4..1e-3).
No tensor is shared, so gradient balancers need ``weighting.gradients_on: parameters`` (and
with a frozen backbone there is nothing shared to balance; the heads and adapters of each task
get exactly their own task's gradient).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import torch
from torch import nn

from polytask.config import SharingConfig, TaskConfig
from polytask.errors import ConfigError
from polytask.extras import require
from polytask.sharing.base import SHARINGS, SharedOutput, Sharing, check_option
from polytask.sharing.usage import used_parameters


@SHARINGS.register("lora")
class LoraSharing(Sharing):
    defaults = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"]}
    has_shared_features = False

    def __init__(self, encoder, tasks, config: SharingConfig) -> None:
        require("peft", "peft", feature="sharing: lora")  # imported on use: peft is slow to import
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.tuners_utils import BaseTunerLayer

        super().__init__(encoder, tasks, config)
        encoder.requires_grad_(False)
        lora = LoraConfig(r=self.options["r"], lora_alpha=self.options["alpha"],
                          lora_dropout=self.options["dropout"],
                          target_modules=list(self.options["target_modules"]))
        with warnings.catch_warnings():  # peft warns that a second adapter is a second adapter
            warnings.simplefilter("ignore")
            try:
                for name in self.task_names:
                    inject_adapter_in_model(lora, encoder, adapter_name=name)
            except ValueError as exc:
                raise ConfigError(f"model.sharing 'lora': options.target_modules "
                                  f"{self.options['target_modules']}: {exc}") from None
        self.adapter_layers = [m for m in encoder.modules() if isinstance(m, BaseTunerLayer)]
        self.all_adapters = self.adapter_parameters()
        self.activate(self.task_names[0])

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        options = super().check_options(config, tasks)
        for name in ("r", "alpha"):
            value = options[name]
            check_option(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                         config, name, "a whole number > 0")
        check_option(isinstance(options["dropout"], (int, float)) and 0 <= options["dropout"] < 1,
                     config, "dropout", "a number in [0, 1)")
        modules = options["target_modules"]
        check_option(isinstance(modules, list) and modules and all(isinstance(m, str) for m in modules),
                     config, "target_modules", "a non-empty list of module names")
        return options

    def activate(self, task: str) -> None:
        """Route the encoder through ``task``'s adapters (peft's set_adapter freezes the other
        adapters; all of them stay trainable here, each only gets its own task's gradient)."""
        for layer in self.adapter_layers:
            layer.set_adapter(task)
        for param in self.all_adapters:
            param.requires_grad_(True)

    def adapter_parameters(self, task: str | None = None) -> list[nn.Parameter]:
        pattern = re.compile(r"\.lora_[A-Za-z_]+\." + (re.escape(task) if task else r"[^.]+") + r"\.")
        return [p for n, p in self.encoder.named_parameters() if pattern.search(n)]

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        per_task = {}
        for name in tasks:
            self.activate(name)
            per_task[name] = self.encoder(**inputs).last_hidden_state
        return SharedOutput(per_task)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.all_adapters)

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        adapters = {id(p) for p in self.all_adapters}
        own = self.adapter_parameters(task)
        return [p for p in used_parameters(self.encoder) if id(p) not in adapters] + own
