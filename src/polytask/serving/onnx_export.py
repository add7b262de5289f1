"""Export a saved model to ONE ONNX graph that computes every task head from one encoder pass.

The graph takes ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer
produces them), with dynamic batch and sequence axes, and has one output per task, named after
the task: that task's logits, exactly what ``MultiTaskModel.forward`` returns.

A tabular model (``model.encoder: tabular``) exports the same way: its field vocabulary
(``tabular_vocab.json``) turns feature columns into ids outside the graph, as it does for
PyTorch, and the graph takes those ids; its sequence axis is the fixed number of fields + 1.

A CRF's Viterbi search is a data-dependent loop that has no place in a static graph, so CRF
tasks export their emissions only; the transition parameters go to ``crf.safetensors`` and
Viterbi runs in Python with pytorch-crf, as in the PyTorch path. The output directory is
self-contained (``polytask.json``, ``encoder/config.json``, tokenizer files, ``onnx.json``,
``manifest.json``), and ``OnnxModel`` (``polytask.serving.onnx_model``) runs it.

An existing output directory is replaced only if it is an earlier export (its manifest says
so) or ``overwrite`` is set; never the source model, a directory inside it or one holding it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
import torch
from safetensors.torch import save_file
from torch import nn

from polytask.atomic import atomic_dir, check_export_target
from polytask.errors import ModelDirError
from polytask.extras import require
from polytask.models.multitask import CONFIG_FILE, MultiTaskModel
from polytask.serving.metadata import model_info
from polytask.serving.onnx_model import CRF_FILE, INFO_FILE, ONNX_FILE, OnnxModel

__all__ = ["OnnxModel", "export_onnx"]

log = logging.getLogger(__name__)

OPSET = 18
FIX = "Pass --overwrite to replace it, or export to another (new or empty) directory."


class _AllHeads(nn.Module):
    """MultiTaskModel with a positional signature and a tuple output, as the exporter needs."""

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model
        self.names = list(model.tasks)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        logits = self.model(input_ids, attention_mask, token_type_ids, self.names)
        return tuple(logits[name] for name in self.names)


def input_names(model: MultiTaskModel) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in model.tokenizer.model_input_names:
        names.append("token_type_ids")
    return names


def _tabular(model: MultiTaskModel) -> bool:
    return hasattr(model.tokenizer, "encode_records")  # a FieldVocabulary (data/tabular.py)


def _dynamic_axes(model: MultiTaskModel) -> dict[int, str]:
    """Batch is dynamic; so is the sequence, except for a tabular row (one id per field)."""
    return {0: "batch"} if _tabular(model) else {0: "batch", 1: "sequence"}


def _example(model: MultiTaskModel, names: list[str]) -> tuple[torch.Tensor, ...]:
    # Batch 2 and length 7, not 1: the exporter would otherwise specialise those axes to 1.
    if _tabular(model):  # a row of missing values: the row token and each field's "missing" id
        ids = torch.tensor([model.tokenizer.encode({})] * 2, dtype=torch.long)
    else:
        ids = torch.full((2, 7), model.tokenizer.pad_token_id or 0, dtype=torch.long)
        ids[:, 0] = model.tokenizer.cls_token_id or 0
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
               "token_type_ids": torch.zeros_like(ids)}
    return tuple(example[name] for name in names)


def _export_graph(wrapper: _AllHeads, example: tuple[torch.Tensor, ...], inputs: list[str],
                  path: Path, opset: int) -> str:
    """The dynamo exporter (torch's default) first; the TorchScript exporter when it fails,
    since some encoders still trip torch.export. Returns the exporter used."""
    axes = _dynamic_axes(wrapper.model)
    try:
        dims = {axis: torch.export.Dim(name) for axis, name in axes.items()}
        program = torch.onnx.export(
            wrapper, example, dynamo=True, opset_version=opset, input_names=inputs,
            output_names=wrapper.names, dynamic_shapes={n: dims for n in inputs})
        program.save(str(path))
        return "dynamo"
    except Exception as exc:  # noqa: BLE001 - any exporter failure falls back to the other one
        log.warning("dynamo ONNX export failed (%s); using the TorchScript exporter", exc)
    torch.onnx.export(wrapper, example, str(path), dynamo=False, opset_version=min(opset, 17),
                      input_names=inputs, output_names=wrapper.names,
                      dynamic_axes={n: axes for n in inputs})
    return "torchscript"


def crf_tensors(model: MultiTaskModel) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, head in model.heads.items():
        crf = getattr(head, "crf", None)
        if crf is not None:
            for part in ("start_transitions", "end_transitions", "transitions"):
                tensors[f"{name}.{part}"] = getattr(crf, part).detach().cpu().contiguous()
    return tensors


def check_output(model_dir: str | Path, out_dir: str | Path, overwrite: bool) -> None:
    check_export_target(model_dir, out_dir, "--onnx", "onnx", overwrite, FIX)


def export_onnx(model_dir: str | Path, out_dir: str | Path, opset: int = OPSET,
                overwrite: bool = False) -> Path:
    """Write ``out_dir`` (replaced atomically) with the ONNX graph of the model in ``model_dir``;
    an existing ``out_dir`` must be an earlier export, unless ``overwrite``."""
    check_output(model_dir, out_dir, overwrite)
    require("onnx", "onnx", "onnxscript", "onnxruntime", feature="polytask export --onnx")
    model = MultiTaskModel.from_pretrained(model_dir)
    generating = sorted(name for name, task in model.tasks.items() if task.config.type == "seq2seq")
    if generating:
        raise ModelDirError(
            f"{model_dir}: task(s) {generating} generate text (seq2seq); generation is a loop over a "
            "decoder that this single-graph export does not cover. Serve the model with PyTorch: "
            f"`polytask serve {model_dir}`")
    inputs = input_names(model)
    clash = sorted(set(inputs) & set(model.tasks))
    if clash:
        raise ModelDirError(f"{model_dir}: task name(s) {clash} collide with ONNX input names; "
                            "rename the task(s) and retrain to export")
    wrapper = _AllHeads(model).eval()
    with atomic_dir(Path(out_dir).resolve(), "onnx", overwrite=overwrite, fix=FIX) as tmp:
        exporter = _export_graph(wrapper, _example(model, inputs), inputs, tmp / ONNX_FILE, opset)
        if crfs := crf_tensors(model):
            save_file(crfs, str(tmp / CRF_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(model.describe(), indent=2), encoding="utf-8")
        model.encoder.config.save_pretrained(tmp / "encoder")
        model.tokenizer.save_pretrained(tmp)
        info = {**model_info(model), "inputs": inputs, "outputs": wrapper.names,
                "exporter": exporter, "opset": opset}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    log.info("exported %s to %s (%s exporter, outputs %s)", model_dir, out_dir, exporter, wrapper.names)
    return Path(out_dir)
