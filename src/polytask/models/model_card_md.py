"""README.md of a saved model directory: a Hugging Face model card (huggingface_hub.ModelCard).

Its YAML header (``library_name: polytask``, tags, the datasets' names) is what the Hub indexes;
its body lists the encoder, the sharing strategy, each task with its label set, the training
data files, and the dev/test metrics of ``results.json`` (the trainer's, given or found beside
the model directory). ``polytask info`` gives the parameter counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

CARD_FILE = "README.md"
MAX_LABELS = 30  # a long label set is cut in the card (the full one is in polytask.json)

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

A multi-task model trained with [polytask](https://pypi.org/project/polytask/): one shared
{{ encoder }} encoder ({{ sharing }} sharing) and one head per task.

## Tasks

| task | type | labels |
|---|---|---|
{{ tasks }}

## Training data

{{ data }}

## Results

{{ results }}

## Use

```python
from polytask.models.multitask import MultiTaskModel

model = MultiTaskModel.from_pretrained("{{ path }}")
model.predict(["your text"])
```

or `polytask predict {{ path }} -i inputs.jsonl`; `polytask export {{ path }} --hf OUT` writes a
transformers model per task (see docs/deployment.md).
"""


def read_results(directory: Path) -> dict[str, Any] | None:
    """results.json beside ``directory`` (a run's model folder), if readable."""
    path = Path(directory).parent / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return results if isinstance(results, dict) else None


def _labels(task: Any) -> str:
    labels = [str(label) for label in task.labels]
    if not labels:
        return "(a number)"
    shown = ", ".join(labels[:MAX_LABELS])
    return shown + (f", ... ({len(labels)} in all)" if len(labels) > MAX_LABELS else "")


def _data(datasets: dict[str, dict[str, str]] | None) -> str:
    if not datasets:
        return "Not recorded (the model was saved outside a training run)."
    return "\n".join(f"- {group}: " + ", ".join(f"{split} `{path}`" for split, path in splits.items())
                     for group, splits in datasets.items())


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _results(results: dict[str, Any] | None) -> str:
    """A table of every scalar dev/test metric per task."""
    if not results:
        return "No results.json beside the model (metrics come with the training run)."
    rows = []
    for split in ("dev", "test"):  # results.json keys are "task/metric" (tables are skipped)
        for key, value in (results.get(split) or {}).items():
            if "/" in key and isinstance(value, (int, float)) and not isinstance(value, bool):
                task, metric = key.split("/", 1)
                rows.append(f"| {task} | {split} | {metric} | {_number(value)} |")
    best = f"Selected at step {results.get('best_step')}.\n\n" if results.get("best_step") is not None else ""
    if not rows:
        return best + "results.json holds no dev or test metrics."
    return best + "| task | split | metric | value |\n|---|---|---|---|\n" + "\n".join(rows)


def render_card(model: Any, directory: Path, datasets: dict[str, dict[str, str]] | None = None,
                results: dict[str, Any] | None = None) -> str:
    """The model card text of ``model`` saved as ``directory``."""
    results = results if results is not None else read_results(directory)
    types = sorted({task.config.type for task in model.tasks.values()})
    data = ModelCardData(library_name="polytask", tags=["polytask", "multi-task", *types],
                         datasets=sorted(datasets) if datasets else None)
    tasks = "\n".join(f"| {name} | {task.config.type} | {_labels(task)} |" for name, task in model.tasks.items())
    card = ModelCard.from_template(
        data, template_str=TEMPLATE, title=Path(directory).name, encoder=model.encoder.config.model_type,
        sharing=model.config.sharing.name, tasks=tasks, data=_data(datasets), results=_results(results),
        path=str(directory))
    return str(card)


def dataset_paths(config: Any) -> dict[str, dict[str, str]]:
    """Per dataset group of a RunConfig, its split files (what the card lists)."""
    return {group: {split: str(path) for split in ("train", "dev", "test")
                    if (path := getattr(spec, split, None)) is not None}
            for group, spec in config.datasets.items()}
