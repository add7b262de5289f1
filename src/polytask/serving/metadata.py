"""What ``GET /metadata`` says about a served model: its tasks and its architecture."""

from __future__ import annotations

from typing import Any

from polytask.models.multitask import MultiTaskModel
from polytask.models.predictor import Predictor


def model_info(model: MultiTaskModel) -> dict[str, Any]:
    """Encoder type and size of a PyTorch model (the ONNX export stores the same in onnx.json)."""
    config = model.encoder.config
    return {"encoder_type": config.model_type, "hidden_size": config.hidden_size,
            "num_layers": getattr(config, "num_hidden_layers", None),
            "max_length": model.config.max_length,
            "parameters": sum(p.numel() for p in model.parameters())}


def describe_tasks(model: Predictor) -> list[dict[str, Any]]:
    return [{"name": name, "type": task.config.type, "level": task.level,
             "labels": task.labels or None, "crf": bool(task.config.crf) if task.level == "token" else None,
             "primary_metric": task.primary_metric, "higher_is_better": task.higher_is_better}
            for name, task in model.tasks.items()]


def metadata(model: Predictor) -> dict[str, Any]:
    if isinstance(model, MultiTaskModel):
        info, runtime = model_info(model), "torch"
    else:
        # The ONNX runner reads what the export wrote; the graph itself has no config to ask.
        info = {k: v for k, v in getattr(model, "info", {}).items()
                if k in ("encoder_type", "hidden_size", "num_layers", "parameters")}
        info["max_length"], runtime = model.config.max_length, "onnxruntime"
    return {"model": {**info, "runtime": runtime, "pooling": model.config.pooling},
            "tasks": describe_tasks(model)}
