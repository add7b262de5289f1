"""The Sharing interface: what each task's head reads from the encoder.

A strategy is one file in this package, registered by name; a config says
``model.sharing: <name>`` (options under ``model.sharing.options``). ``MultiTaskModel`` builds
it from the encoder, the tasks and the config, calls it once per forward pass, and then runs
the heads on what it returns (pooling for sequence tasks unless the strategy pooled itself).

The base encoder stays registered at ``MultiTaskModel.encoder``, so the weight names of the
default ``hard`` sharing (and every model saved before strategies existed) are unchanged; a
strategy keeps an unregistered reference to it. Weights a strategy adds live under
``sharing.``; whole encoder copies under ``sharing.encoder_copies.`` (trained at ``train.lr``
like the encoder, everything else a strategy adds at ``train.head_lr``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from polytask.config import SharingConfig, TaskConfig
from polytask.errors import ConfigError
from polytask.registry import family
from polytask.sharing.usage import used_parameters

SHARINGS = family("sharing")
#: Parameter-name prefixes of a MultiTaskModel that belong to an encoder (trained at train.lr).
ENCODER_PREFIXES = ("encoder.", "sharing.encoder_copies.")


@dataclass
class SharedOutput:
    """What one forward pass of a strategy gives the heads."""

    #: task -> [B, T, H] token features its head reads (pooled first for sequence tasks).
    per_task: dict[str, torch.Tensor]
    #: The one tensor every task's features are computed from (a node of their graph), for
    #: gradient balancers with ``gradients_on: features``; None when no such tensor exists.
    shared: torch.Tensor | None = None
    #: task -> [B, H] for sequence tasks the strategy pools itself (attention pooling).
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)
    #: The shared encoder's hidden states (embedding output, then each layer's output), nodes
    #: of every task's graph; while training, from strategies that run one shared encoder. A
    #: feature point below the top lets per-task gradients meet where attention has mixed the
    #: positions each task reads (``weighting.gradients_on``, docs/weighting.md).
    hidden_states: tuple[torch.Tensor, ...] | None = None


class Sharing(nn.Module):
    """Base of every strategy. Subclasses implement ``forward`` and set ``defaults``."""

    #: Accepted options and their defaults; anything else in the config is an error.
    defaults: ClassVar[dict[str, Any]] = {}
    #: False when ``SharedOutput.shared`` is always None (per-task encoder copies or adapters):
    #: gradient balancers must then take gradients w.r.t. parameters.
    has_shared_features: ClassVar[bool] = True

    def __init__(self, encoder: nn.Module, tasks: Sequence[Any], config: SharingConfig) -> None:
        super().__init__()
        self.__dict__["encoder"] = encoder  # unregistered: its weights are listed once, at model.encoder
        self.name = config.name
        self.task_names = [t.name for t in tasks]
        self.levels = {t.name: t.level for t in tasks}
        self.options = self.check_options(config, [t.config for t in tasks])

    @classmethod
    def check_options(cls, config: SharingConfig, tasks: list[TaskConfig]) -> dict[str, Any]:
        """The options with defaults filled in; raises ConfigError on a bad one. Subclasses
        extend this with their own checks (it also runs at start-up, before data is read)."""
        unknown = sorted(set(config.options) - set(cls.defaults))
        if unknown:
            accepted = ", ".join(sorted(cls.defaults)) or "none"
            raise ConfigError(f"model.sharing {config.name!r}: unknown option(s) {unknown}; "
                              f"accepted: {accepted}")
        return {**cls.defaults, **config.options}

    def forward(self, inputs: dict[str, torch.Tensor], tasks: list[str]) -> SharedOutput:
        raise NotImplementedError

    def regularization(self) -> torch.Tensor | None:
        """A penalty the trainer adds to the step's loss (soft sharing); None for no penalty."""
        return None

    def shared_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters below the heads' features: what gradient balancers combine."""
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        """Every parameter (trainable or frozen) that ``task``'s features depend on."""
        return used_parameters(self.encoder)

    def required_tasks(self, tasks: list[str]) -> list[str]:
        """The tasks whose heads must run for ``tasks``, in the order to run them."""
        return list(tasks)

    def head_input(self, task: str, features: torch.Tensor, outputs: dict[str, torch.Tensor],
                   attention_mask: torch.Tensor) -> torch.Tensor:
        """What ``task``'s head reads, given its (pooled) features and the earlier heads' outputs."""
        return features


def check_option(ok: bool, config: SharingConfig, option: str, requirement: str) -> None:
    """Raise a ConfigError naming the option and what it must be unless ``ok``."""
    if not ok:
        value = config.options.get(option)
        raise ConfigError(f"model.sharing {config.name!r}: options.{option} must be {requirement}, "
                          f"got {value!r}")


def transformer_layers(encoder: nn.Module, strategy: str) -> nn.ModuleList:
    """The layer list of a BERT-like encoder (``embeddings`` + ``encoder.layer``)."""
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(encoder, "embeddings"):
        raise ConfigError(
            f"model.sharing {strategy!r} works layer by layer and supports BERT-like encoders "
            f"(embeddings + encoder.layer: BERT, RoBERTa, ELECTRA, MiniLM); "
            f"{type(encoder).__name__} is not one. Use sharing hard, soft, mmoe, ple or lora")
    return layers


def build_sharing(config: SharingConfig, encoder: nn.Module, tasks: Sequence[Any]) -> Sharing:
    return SHARINGS.get(config.name)(encoder, tasks, config)


def check_sharing(config: SharingConfig, tasks: list[TaskConfig], feature_gradients: bool) -> None:
    """Start-up check: the options are valid, and a balancer that takes gradients w.r.t. the
    shared features gets a strategy that has them."""
    strategy = SHARINGS.get(config.name)
    strategy.check_options(config, tasks)
    if feature_gradients and not strategy.has_shared_features:
        raise ConfigError(
            f"model.sharing {config.name!r} gives each task its own encoder path, so there are no "
            "shared features to take per-task gradients on; set weighting.gradients_on: parameters "
            "or use a loss-weighting method")
