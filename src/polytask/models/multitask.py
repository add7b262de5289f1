"""One shared encoder, one head per task; every requested task from ONE encoder pass.

A saved model directory holds:

- ``model.safetensors``   every weight (encoder and heads);
- ``polytask.json``       format version, model options, each task's config and state
                          (label maps, target statistics);
- ``encoder/config.json`` the encoder architecture, rebuilt offline without the hub;
- the tokenizer files (a tabular model: ``tabular_vocab.json``, its field vocabulary);
- ``manifest.json``       written last: every file's size and sha256 (polytask.manifest),
                          checked at load, and what lets a later save replace this directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch import nn
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from polytask import manifest
from polytask.atomic import atomic_dir, recover
from polytask.config import ModelConfig, TaskConfig
from polytask.data.tabular import FieldVocabulary
from polytask.errors import ConfigError, ModelDirError
from polytask.tasks.decoders import encoder_from_config
from polytask.models.loading import (TRUST_FLAG, clamp_max_length, embedding_rows, refusal,
                                     tokenizer_fingerprint, tokenizer_problem)
from polytask.models.model_card_md import CARD_FILE, render_card
from polytask.models.tabular import TabularConfig  # registers the tabular encoder with AutoConfig
from polytask.sharing.base import SharedOutput, build_sharing
from polytask.tasks.base import BuildContext, Task, build_task

FORMAT_VERSION = 1
CONFIG_FILE = "polytask.json"
WEIGHTS_FILE = "model.safetensors"

log = logging.getLogger(__name__)


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    if how == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def feature_point(shared: SharedOutput, layer: int | None, exact: bool) -> torch.Tensor:
    """The hidden state ``layer`` of the shared encoder (None: the strategy's shared tensor).

    A hidden state inside the frozen part of an encoder has no gradient: then, unless ``exact``
    (a partial Jacobian only needs to know where its layers begin), the shared tensor, since
    nothing below the heads that trains could receive a combined gradient anyway."""
    states = shared.hidden_states
    if layer is None or states is None:
        return shared.shared
    if not -len(states) <= layer < len(states):
        raise ConfigError(
            f"weighting.gradients_on: hidden state {layer} does not exist; this encoder has "
            f"{len(states)} (0 = embedding output ... {len(states) - 1} = encoder output, or "
            f"-1 ... -{len(states)} from the top): choose a layer (or k) in that range")
    point = states[layer]
    return point if exact or point.requires_grad else shared.shared


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 tasks: list[Task], config: ModelConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.tasks = {task.name: task for task in tasks}
        self.sharing = build_sharing(config.sharing, encoder, tasks)
        hidden = encoder.config.hidden_size
        context = BuildContext(tokenizer, encoder)  # generation tasks copy decoders from it
        for task in tasks:
            task.bind(context)
        self.heads = nn.ModuleDict(
            {task.name: task.build_head(hidden, config.head_dropout) for task in tasks}
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None,
                tasks: list[str] | None = None, return_features: bool = False,
                feature_layer: int | None = None, exact_layer: bool = False):
        """Logits of each requested task (all by default) from one pass of the sharing strategy
        (one encoder pass for hard sharing); with ``return_features`` also the features the
        balancers take gradients on: the strategy's shared tensor, or, where it has none, the
        list of distinct per-task feature tensors (enough for ``gradients_on: parameters``).
        With ``feature_layer``, the shared encoder's hidden state of that index instead (see
        ``feature_point``)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        names = tasks or list(self.tasks)
        needed = self.sharing.required_tasks(names)
        shared = self.sharing(inputs, needed)
        pooled: dict[int, torch.Tensor] = {}  # one pooling per distinct feature tensor
        outputs = {}
        for name in needed:
            features = shared.per_task[name]
            if self.tasks[name].level != "token":
                features = shared.pooled.get(name)
                if features is None:
                    hidden = shared.per_task[name]
                    if id(hidden) not in pooled:
                        pooled[id(hidden)] = pool(hidden, attention_mask, self.config.pooling)
                    features = pooled[id(hidden)]
            features = self.sharing.head_input(name, features, outputs, attention_mask)
            outputs[name] = self.heads[name](features)
        outputs = {name: outputs[name] for name in names}
        if not return_features:
            return outputs
        if shared.shared is not None:
            return outputs, feature_point(shared, feature_layer, exact_layer)
        return outputs, list({id(t): t for t in (shared.per_task[n] for n in names)}.values())

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.sharing.shared_parameters()

    def parameters_for(self, task: str) -> list[nn.Parameter]:
        """Every parameter ``task``'s prediction depends on (for the model card)."""
        heads = [p for name in self.sharing.required_tasks([task]) for p in self.heads[name].parameters()]
        return self.sharing.parameters_for(task) + heads

    # ------------------------------------------------------------------ persistence
    def describe(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model": self.config.model_dump(mode="json"),
            "tasks": [
                {"config": task.config.model_dump(mode="json"), "state": task.state()}
                for task in self.tasks.values()
            ],
            **({} if isinstance(self.tokenizer, FieldVocabulary)
               else {"tokenizer": tokenizer_fingerprint(self.tokenizer)}),
        }

    def save_to(self, directory: Path, card_for: Path | None = None,
                results: dict[str, Any] | None = None) -> None:
        """Write the model into an existing directory (used inside atomic writes); its README.md
        model card describes it as saved at ``card_for`` (default: ``directory``), with the
        metrics ``results`` (default: the results.json beside ``card_for``, if any)."""
        directory = Path(directory)
        save_model(self, str(directory / WEIGHTS_FILE))
        (directory / CONFIG_FILE).write_text(json.dumps(self.describe(), indent=2), encoding="utf-8")
        self.encoder.config.save_pretrained(directory / "encoder")
        self.tokenizer.save_pretrained(directory)
        card = render_card(self, card_for or directory, getattr(self, "training_data", None), results)
        (directory / CARD_FILE).write_text(card, encoding="utf-8")

    def save_pretrained(self, directory: str | Path, results: dict[str, Any] | None = None) -> Path:
        """Write (or replace, if polytask wrote it) the model directory, atomically; ``results``
        (a training run's results.json) puts dev/test metrics in its model card."""
        with atomic_dir(Path(directory), "model") as tmp:
            self.save_to(tmp, card_for=Path(directory), results=results)
        return Path(directory)

    def remember_training_data(self, datasets: dict[str, dict[str, str]]) -> None:
        """The data files (per dataset group, per split) the model card lists when saved."""
        self.training_data = datasets

    def predict(self, inputs: list[str | list[str] | dict[str, Any]], tasks: list[str] | None = None,
                batch_size: int = 32, **generation: Any) -> list[dict[str, Any]]:
        """Every task's (or ``tasks``') prediction for each input (a text, a word list or a
        {"text"/"tokens"/"text_pair"} dict), as ``polytask predict`` gives them; ``generation``:
        ``num_beams``/``max_new_tokens`` for seq2seq tasks."""
        from polytask.inference import predict_inputs  # layers: allow (a convenience facade over the prediction path, which sits above models)

        return predict_inputs(self, inputs, tasks, batch_size, **generation)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu",
                        trust_remote_code: bool = False,
                        dtype: str | torch.dtype | None = None) -> MultiTaskModel:
        """The model saved in ``directory``, on ``device`` (in ``dtype``, e.g. "bfloat16", if
        given); ``trust_remote_code`` lets Python code shipped in the directory run (the caller's
        choice: a saved model never turns it on by itself)."""
        directory = Path(directory)
        device, dtype = usable_device(device), torch_dtype(dtype)
        restore_interrupted_save(directory)
        meta = read_model_meta(directory)
        check_integrity(directory)
        model_config, tasks, encoder, tokenizer = _load_parts(directory, meta, trust_remote_code)
        model = cls(encoder, tokenizer, tasks, model_config)
        try:
            load_model(model, str(directory / WEIGHTS_FILE), strict=True, device=str(device))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type too
            raise ModelDirError(f"{directory / WEIGHTS_FILE}: weights do not fit the model ({exc})") from None
        return model.to(device=device, dtype=dtype).eval()


def usable_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, or a ConfigError if this machine has no such device."""
    try:
        device = torch.device(device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError, ValueError) as exc:  # torch says "not compiled with CUDA"
        raise ConfigError(f"device {str(device)!r} is not available on this machine ({exc}); "
                          "load with device='cpu' (or 'auto' in polytask.predict / the CLI)") from None
    return device


def torch_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``dtype`` ("float32", "bfloat16", "float16", a torch.dtype or None) as a torch.dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    found = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(found, torch.dtype) or not found.is_floating_point:
        raise ConfigError(f"dtype {dtype!r}: not a floating-point torch dtype; use float32, "
                          "bfloat16 or float16")
    return found


def _load_parts(directory: Path, meta: dict[str, Any], trust: bool) -> tuple[ModelConfig, list[Task], Any, Any]:
    """Config, tasks, encoder (random weights) and tokenizer of a saved model, each checked."""
    options = {"local_files_only": True, "trust_remote_code": trust}
    try:
        model_config = ModelConfig.model_validate({**meta["model"], "trust_remote_code": trust})
        tasks = [build_task(TaskConfig.model_validate(t["config"]), t["state"]) for t in meta["tasks"]]
        encoder_config = AutoConfig.from_pretrained(directory / "encoder", **options)
        encoder = encoder_from_config(encoder_config, trust)  # AutoModel, or a seq2seq's encoder
        tokenizer = (FieldVocabulary.from_pretrained(directory) if isinstance(encoder_config, TabularConfig)
                     else AutoTokenizer.from_pretrained(directory, **options))
    except (KeyError, TypeError, ValueError, OSError) as exc:
        message = refusal(directory, exc, TRUST_FLAG) or f"{directory}: not a valid polytask model directory ({exc})"
        raise ModelDirError(message) from None
    if not isinstance(encoder_config, TabularConfig):
        if problem := tokenizer_problem(tokenizer, embedding_rows(encoder), meta.get("tokenizer")):
            raise ModelDirError(f"{directory / 'tokenizer.json'}: {problem}; restore the tokenizer files "
                                "(tokenizer.json, tokenizer_config.json) saved with this model")
    model_config.max_length = clamp_max_length(model_config.max_length, encoder, directory)
    return model_config, tasks, encoder, tokenizer


def read_model_meta(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelDirError(f"{directory}: no {CONFIG_FILE}; is this a model saved by polytask?")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path}: unreadable ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ModelDirError(f"{path}: unsupported format_version (expected {FORMAT_VERSION})")
    if not (directory / WEIGHTS_FILE).is_file():
        raise ModelDirError(f"{directory}: {WEIGHTS_FILE} is missing")
    return meta


def restore_interrupted_save(directory: Path) -> None:
    """Undo what a save killed mid-swap left beside ``directory`` (polytask.atomic.recover)."""
    try:
        done = recover(directory.parent, lambda name: name == directory.name)
    except OSError:  # a read-only location: nothing to clean, nothing lost
        return
    for line in done:
        log.warning("interrupted save of %s: %s", directory, line)


def check_integrity(directory: Path) -> None:
    """A model dir with a manifest (saved by polytask >= manifests) must match it."""
    if manifest.read_manifest(directory) is None:  # saved before manifests: the strict load checks
        if (directory / manifest.MANIFEST).exists():
            log.warning("%s is unreadable: the files of %s are not checked against their sha256",
                        directory / manifest.MANIFEST, directory)
        return
    if found := manifest.problems(directory):
        raise ModelDirError(f"{directory}: damaged, {'; '.join(found)}. Restore it from a copy or "
                            "retrain; if you changed these files on purpose, delete "
                            f"{directory / manifest.MANIFEST}")
