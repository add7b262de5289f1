"""Running an exported ONNX model with ONNX Runtime, behind the same ``Predictor`` seam as
``MultiTaskModel``, so ``predict_records``/``run_tasks`` (and the server) use it unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchcrf import CRF
from transformers import AutoConfig, AutoTokenizer

from polytask.config import ModelConfig, TaskConfig
from polytask.data.tabular import FieldVocabulary
from polytask.errors import ModelDirError
from polytask.extras import require
from polytask.models.multitask import (CONFIG_FILE, FORMAT_VERSION, check_integrity,
                                       restore_interrupted_save)
from polytask.models.tabular import TabularConfig  # registers the tabular encoder with AutoConfig
from polytask.tasks.base import Task, build_task

ONNX_FILE = "model.onnx"
CRF_FILE = "crf.safetensors"
INFO_FILE = "onnx.json"


class CrfDecoder(nn.Module):
    """Just the CRF of a tagging head: what ``TokenClassification.decode`` reads (``head.crf``)."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.crf = CRF(num_tags, batch_first=True)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{path}: expected a JSON object")
    return data


def load_tokenizer(directory: Path, encoder_config: Any) -> Any:
    """The text tokenizer, or a tabular model's field vocabulary (it encodes outside the graph)."""
    if isinstance(encoder_config, TabularConfig):
        return FieldVocabulary.from_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory, local_files_only=True)


def _crf_decoders(directory: Path, tasks: dict[str, Task]) -> dict[str, CrfDecoder | None]:
    from safetensors.torch import load_file

    tensors = load_file(str(directory / CRF_FILE)) if (directory / CRF_FILE).is_file() else {}
    heads: dict[str, CrfDecoder | None] = {}
    for name, task in tasks.items():
        if not task.config.crf or task.level != "token":
            heads[name] = None
            continue
        decoder = CrfDecoder(task.num_outputs)
        try:
            decoder.crf.load_state_dict({part: tensors[f"{name}.{part}"] for part in
                                         ("start_transitions", "end_transitions", "transitions")})
        except KeyError:
            raise ModelDirError(f"{directory / CRF_FILE}: no CRF transitions for task {name!r}; "
                                "export the model again with `polytask export`") from None
        heads[name] = decoder.eval()
    return heads


class OnnxModel:
    """An exported model directory run by ONNX Runtime on the CPU.

    ``model(input_ids, attention_mask, token_type_ids, tasks)`` returns ``{task: logits}`` as
    torch tensors, like ``MultiTaskModel``; the graph always computes every head (they are tiny
    next to the encoder), and the requested ones are returned.
    """

    training = False

    def __init__(self, directory: str | Path, num_threads: int | None = None) -> None:
        ort = require("onnx", "onnxruntime", feature="serving an ONNX export")
        directory = Path(directory)
        restore_interrupted_save(directory)
        if not (directory / ONNX_FILE).is_file():
            hint = (" (it is a PyTorch model: serve it without --onnx, or export it)"
                    if (directory / "model.safetensors").is_file() else "")
            raise ModelDirError(f"{directory}: no {ONNX_FILE}{hint}; create an ONNX directory with "
                                "`polytask export MODEL_DIR --onnx OUT_DIR`")
        check_integrity(directory)  # an export's manifest carries every file's sha256
        meta = _read_json(directory / CONFIG_FILE)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelDirError(f"{directory / CONFIG_FILE}: unsupported format_version")
        try:
            self.config = ModelConfig.model_validate(meta["model"])
            tasks = [build_task(TaskConfig.model_validate(t["config"]), t["state"]) for t in meta["tasks"]]
            self.encoder_config = AutoConfig.from_pretrained(directory / "encoder", local_files_only=True)
            self.tokenizer = load_tokenizer(directory, self.encoder_config)
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ModelDirError(f"{directory}: not a valid exported model directory ({exc})") from None
        self.directory = directory
        self.tasks = {task.name: task for task in tasks}
        self.heads = _crf_decoders(directory, self.tasks)
        self.info = _read_json(directory / INFO_FILE) if (directory / INFO_FILE).is_file() else {}
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(directory / ONNX_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None = None,
                 tasks: list[str] | None = None) -> dict[str, torch.Tensor]:
        given = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": token_type_ids if token_type_ids is not None
                 else torch.zeros_like(input_ids)}
        feed = {name: given[name].detach().cpu().long().numpy() for name in self.input_names}
        outputs = dict(zip(self.output_names, self.session.run(None, feed)))
        return {name: torch.from_numpy(outputs[name]) for name in tasks or list(self.tasks)}

    # Predictor protocol: inference only, there is no training mode to switch.
    def eval(self) -> OnnxModel:
        return self

    def train(self, mode: bool = True) -> OnnxModel:
        return self
