"""``--resume`` continues the run that is on disk: the config must be the run's own (its
``config.yaml``) except for a few settings that cannot change what is trained, and the model
must have the shapes of the checkpoint (same tasks, same label sets)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from polytask.config import RunConfig, parse_config
from polytask.errors import ConfigError, PolytaskError
from polytask.training import checkpoint
from polytask.yaml_io import read_yaml

log = logging.getLogger(__name__)

#: Settings a resumed run may change: where the run lives (a run directory moved or copied),
#: display, threads, trackers, evaluation batching, alarms and the search section. Anything
#: else (lr, schedule, steps, data, tasks, model, seed, device...) would silently continue a
#: different run than the one the checkpoint belongs to.
RESUME_MAY_CHANGE = ("train.output_dir", "train.progress", "train.num_threads", "train.report_to",
                     "train.eval_batch_size", "train.stl_baselines", "train.alarm_patience",
                     "train.log_every", "train.check_transfer", "tune")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values; lists of mappings (tasks) by index, other lists whole."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_changes(old: RunConfig, new: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Every field whose value differs, as ``{dotted key: (old, new)}``; absent = None."""
    before, after = flatten(old.model_dump(mode="json")), flatten(new.model_dump(mode="json"))
    return {key: (before.get(key), after.get(key)) for key in sorted(set(before) | set(after))
            if before.get(key) != after.get(key)}


def allowed(key: str) -> bool:
    return any(key == name or key.startswith(name + ".") for name in RESUME_MAY_CHANGE)


def check_resumed_config(config: RunConfig) -> dict[str, tuple[Any, Any]]:
    """Compare with the run's own config.yaml: refuse changes that alter training (each named,
    old -> new), return the allowed ones (to record). No checkpoint yet: nothing to compare."""
    out = Path(config.train.output_dir)
    saved_path = out / "config.yaml"
    if not checkpoint.checkpoints(out / "checkpoints") or not saved_path.is_file():
        return {}
    try:
        raw, node = read_yaml(saved_path, "config")
        saved = parse_config(raw, str(saved_path), saved_path.parent, node)
    except PolytaskError as exc:
        raise ConfigError(f"--resume: the run's own {saved_path} cannot be read ({exc}); resume with "
                          "a readable copy of it, or start a new output_dir") from None
    changes = config_changes(saved, config)
    refused = {k: v for k, v in changes.items() if not allowed(k)}
    if refused:
        shown = "\n  - ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        raise ConfigError(
            f"--resume: the config differs from the run's own {saved_path} in setting(s) that change "
            f"training:\n  - {shown}\nresume with that config (polytask train {saved_path} --resume), "
            "or train into a new train.output_dir (to train longer or differently from this run's "
            f"model: --init-from {out / 'model'}); on resume only {', '.join(RESUME_MAY_CHANGE)} may change")
    for key, (old, new) in changes.items():
        log.warning("--resume: %s changed %r -> %r (allowed: it does not change training)", key, old, new)
    return changes


def check_shapes(found: Path, model: torch.nn.Module) -> None:
    """Before loading ``found``: every weight has the checkpoint's shape, so a task added or a
    label set changed (new labels in the training data) is named instead of a raw RuntimeError."""
    own = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    try:
        with safe_open(str(found / "model.safetensors"), "pt") as weights:
            saved = {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118
    except Exception:  # noqa: BLE001 - a damaged file is load_checkpoint's to report
        return
    problems = [f"{name}: {saved.get(name)} in the checkpoint, {shape} now"
                for name, shape in own.items() if saved.get(name, shape) != shape]
    problems += [f"{name}: not in this model" for name in saved if name not in own]
    problems += [f"{name}: not in the checkpoint" for name in own if name not in saved]
    if problems:
        raise ConfigError(
            f"--resume: the model no longer has the shapes of {found} (tasks or their label sets "
            "changed; a head's first dimension is its number of labels):\n  - "
            + "\n  - ".join(problems[:20])
            + "\nrestore the training data and tasks the run started with, or start a new output_dir")
