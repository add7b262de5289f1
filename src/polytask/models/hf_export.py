"""Export a saved model as standard transformers directories (``polytask export --hf OUT``).

``OUT/encoder`` is the shared encoder as a plain ``AutoModel`` with its tokenizer, and
``OUT/<task>`` per task a directory that ``AutoModelForSequenceClassification`` (classification,
multilabel, regression) or ``AutoModelForTokenClassification`` (token tasks) loads, with
``id2label``/``label2id`` and ``problem_type``, so ``transformers.pipeline`` runs it.

Only hard sharing qualifies: there a task's network IS the encoder plus its head. The other
strategies add per-task parameters inside or beside the encoder (gates, experts, adapters,
cross-stitch units) that no standard class holds; use ``export --onnx`` for them.

Pooling, exactly. polytask's head reads the [CLS] hidden state ``x`` and computes ``W x + b``.
transformers' classifiers put a dense layer and tanh in between: BERT's pooler
``tanh(P x + p)`` (then ``classifier``), RoBERTa's head ``out_proj(tanh(dense(x)))``. With
``P = s I`` (s = 1e-6), ``p = 0`` and the last layer ``W / s``, the exported model computes
``W tanh(s x) / s + b``, and for ``|s x| < 1e-4`` (|x| < 100, far above a LayerNorm'd hidden
state) ``tanh(y) = y (1 - y^2/3 + ...)`` differs from ``y`` by a relative 3e-9, below float32's
rounding: the same function to float32 precision. Every export is checked against polytask's
own logits (within 1e-4) before anything is written; a model that does not match is refused.
A regression head's target normalisation (mean, std) is folded into its weights, so the
pipeline's score is the prediction itself. Mean pooling has no standard class: refused.

A CRF tagger exports its emission scores only (argmax per token, as a plain softmax tagger):
the learnt transitions, and so Viterbi decoding, are lost; the task folder's README.md and the
command's output say so.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from polytask.atomic import atomic_dir, check_export_target
from polytask.errors import ModelDirError
from polytask.models.multitask import MultiTaskModel

log = logging.getLogger(__name__)

KIND = "hf-export"
FIX = "Pass --overwrite to replace it, or export to another (new or empty) directory."
SCALE = 1e-6  # see the module docstring: tanh(SCALE * x) / SCALE == x in float32
PROBLEM_TYPES = {"classification": "single_label_classification",
                 "multilabel": "multi_label_classification", "regression": "regression"}
CHECK_TEXTS = ["polytask export check", "a second, longer input to compare the logits on"]


def check_output(model_dir: Path, out_dir: Path, overwrite: bool) -> None:
    check_export_target(model_dir, out_dir, "--hf", KIND, overwrite, FIX)


def exportable(model: MultiTaskModel, source: Path) -> None:
    """A ModelDirError with the reason unless every task is the encoder plus its head."""
    sharing = model.config.sharing.name
    if sharing != "hard":
        raise ModelDirError(f"{source}: sharing {sharing!r} gives each task parameters beyond the "
                            "encoder and its head, which no standard transformers class holds; only "
                            "hard sharing exports with --hf (use `polytask export --onnx` to serve it)")
    if hasattr(model.tokenizer, "encode_records"):  # a FieldVocabulary: no transformers tokenizer
        raise ModelDirError(f"{source}: a tabular model has no transformers equivalent; use "
                            "`polytask export --onnx` to serve it")
    if "encoder" in model.tasks:
        raise ModelDirError(f"{source}: a task named 'encoder' would share its folder with the "
                            "exported encoder; rename the task and retrain to export with --hf")
    kinds = {name: task.config.type for name, task in model.tasks.items()}
    other = sorted(n for n, t in kinds.items() if t not in PROBLEM_TYPES and model.tasks[n].level != "token")
    if other:
        raise ModelDirError(f"{source}: task(s) {other} ({', '.join(kinds[n] for n in other)}) have "
                            "no AutoModelFor... class here; export --hf covers classification, "
                            "multilabel, regression and token classification")
    pooled = sorted(n for n, t in model.tasks.items() if t.level != "token")
    if pooled and model.config.pooling != "cls":
        raise ModelDirError(f"{source}: model.pooling is {model.config.pooling!r}, and transformers' "
                            f"sequence classifiers read [CLS] only; task(s) {pooled} cannot be "
                            "exported exactly (train with model.pooling: cls to export them)")


def task_config(model: MultiTaskModel, name: str) -> Any:
    """The encoder's config with this task's label maps and problem type."""
    task = model.tasks[name]
    config = copy.deepcopy(model.encoder.config)
    labels = task.labels or [name]  # a regression target: one output named after the task
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    if task.level != "token":
        config.problem_type = PROBLEM_TYPES[task.config.type]
    return config


def _linear(head: nn.Module) -> nn.Linear:
    """The Linear layer of a polytask head (Dropout + Linear; a tagger's emissions)."""
    return [m for m in head.modules() if isinstance(m, nn.Linear)][-1]


def _set(layer: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)


def _sequence_head(hf: nn.Module, weight: torch.Tensor, bias: torch.Tensor, source: Path) -> None:
    """Make the classifier of ``hf`` compute ``weight @ cls + bias`` (module docstring)."""
    base = getattr(hf, hf.base_model_prefix)
    hidden = weight.size(1)
    identity = torch.eye(hidden) * SCALE
    if getattr(base, "pooler", None) is not None and isinstance(getattr(hf, "classifier", None), nn.Linear):
        _set(base.pooler.dense, identity, torch.zeros(hidden))  # BERT: pooler, then classifier
        _set(hf.classifier, weight / SCALE, bias)
    elif hasattr(getattr(hf, "classifier", None), "out_proj"):  # RoBERTa: dense, tanh, out_proj
        _set(hf.classifier.dense, identity, torch.zeros(hidden))
        _set(hf.classifier.out_proj, weight / SCALE, bias)
    else:
        raise ModelDirError(f"{source}: {type(hf).__name__} pools in a way polytask cannot "
                            "reproduce exactly; export --hf supports BERT- and RoBERTa-style encoders")


def build_task_model(model: MultiTaskModel, name: str, source: Path) -> nn.Module:
    """A transformers model computing ``name``'s polytask prediction (decoded scale)."""
    task, config = model.tasks[name], task_config(model, name)
    auto = AutoModelForTokenClassification if task.level == "token" else AutoModelForSequenceClassification
    hf = auto.from_config(config).eval()
    base = getattr(hf, hf.base_model_prefix)
    missing, unexpected = base.load_state_dict(model.encoder.state_dict(), strict=False)
    if [k for k in [*missing, *unexpected] if not k.startswith("pooler.")]:
        raise ModelDirError(f"{source}: the encoder's weights do not fit {type(hf).__name__} "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    linear = _linear(model.heads[name])
    weight, bias = linear.weight.detach().float().cpu(), linear.bias.detach().float().cpu()
    if task.config.type == "regression":  # fold the target normalisation into the head
        weight, bias = weight * task.std, bias * task.std + task.mean
    if task.level == "token":
        _set(hf.classifier, weight, bias)
    else:
        _sequence_head(hf, weight, bias, source)
    return hf


def check_parity(model: MultiTaskModel, name: str, hf: nn.Module, source: Path) -> None:
    """Refuse an export whose logits differ from polytask's by more than 1e-4."""
    task = model.tasks[name]
    batch = model.tokenizer(CHECK_TEXTS + [str(label) for label in task.labels[:4]],
                            padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"), [name])[name]
        got = hf(**batch).logits
    want = want.float().reshape(got.shape)
    if task.config.type == "regression":
        want = want * task.std + task.mean
    if task.level == "token":  # padding positions are not predictions
        keep = batch["attention_mask"].bool()
        want, got = want[keep], got[keep]
    if not torch.allclose(got, want, atol=1e-4, rtol=1e-4):
        raise ModelDirError(f"{source}: the exported {type(hf).__name__} of task {name!r} differs "
                            f"from polytask's logits by {float((got - want).abs().max()):.2e}; not exported")


def crf_note(name: str) -> str:
    return (f"Task {name!r} was trained with a CRF. This folder holds its emission scores only: the "
            "learnt CRF transitions are lost, so transformers decodes each token by argmax instead "
            "of Viterbi (tags may differ from `polytask predict`, and B/I constraints are not applied).")


def task_readme(model: MultiTaskModel, name: str, source: Path, auto: str) -> str:
    task = model.tasks[name]
    lines = [f"# {name}", "", f"Task {name!r} ({task.config.type}) of the polytask model `{source}`,",
             f"exported as a standard `{auto}`.", ""]
    if getattr(model.heads[name], "crf", None) is not None:
        lines += [crf_note(name), ""]
    return "\n".join(lines)


def export_hf(model_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write ``out_dir`` (atomically) with ``encoder/`` and one folder per task; returns
    {"path": out_dir, "tasks": {task: pipeline name}, "notes": [what was lost]}."""
    source, out = Path(model_dir), Path(out_dir)
    check_output(source, out, overwrite)
    model = MultiTaskModel.from_pretrained(source, device="cpu", dtype=torch.float32)
    exportable(model, source)
    built = {name: build_task_model(model, name, source) for name in model.tasks}
    for name, hf in built.items():
        check_parity(model, name, hf, source)
    notes = [crf_note(n) for n in model.tasks if getattr(model.heads[n], "crf", None) is not None]
    with atomic_dir(out.resolve(), KIND, overwrite=overwrite, fix=FIX, source=str(source)) as tmp:
        model.encoder.save_pretrained(tmp / "encoder")
        model.tokenizer.save_pretrained(tmp / "encoder")
        for name, hf in built.items():
            hf.save_pretrained(tmp / name)
            model.tokenizer.save_pretrained(tmp / name)
            (tmp / name / "README.md").write_text(
                task_readme(model, name, source, type(hf).__name__), encoding="utf-8")
    tasks = {n: "token-classification" if model.tasks[n].level == "token" else "text-classification"
             for n in model.tasks}
    log.info("exported %s to %s for transformers: %s", source, out, tasks)
    return {"path": out, "tasks": tasks, "notes": notes}
