"""Crash-safe checkpoints: written to a temp dir, fsynced, renamed; a manifest marks them whole.

A checkpoint ``checkpoints/step-00000120/`` holds the model weights (safetensors), optimizer,
scheduler and balancer state (torch tensors, loaded with ``weights_only=True``: no pickled
code ever runs), and ``trainer_state.json`` (step, data positions, early stopping, RNG).
``manifest.json`` is written last and lists every file with its size; resume takes the newest
checkpoint whose manifest matches the files on disk and skips torn ones with a warning.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from polytask.atomic import atomic_dir
from polytask.errors import CheckpointError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STEP_DIR = re.compile(r"^step-(\d{8})$")


def capture_rng() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # Plain lists, not arrays: the file must load with weights_only=True.
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, keys.tolist(), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(directory: Path, step: int, model: torch.nn.Module,
                    objects: dict[str, Any], trainer_state: dict[str, Any], keep: int) -> Path:
    """``objects`` maps a name to anything with a state_dict (optimizer, scheduler...)."""
    final = Path(directory) / f"step-{step:08d}"
    with atomic_dir(final) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        tensors = {name: obj.state_dict() for name, obj in objects.items()}
        tensors["rng"] = capture_rng()
        torch.save(tensors, tmp / "state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state), encoding="utf-8")
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}), encoding="utf-8")
    prune(Path(directory), keep)
    return final


def is_complete(path: Path) -> bool:
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        return all((path / name).stat().st_size == size for name, size in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def checkpoints(directory: Path) -> list[Path]:
    if not Path(directory).is_dir():
        return []
    found = [p for p in Path(directory).iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_complete(directory: Path) -> Path | None:
    for path in reversed(checkpoints(directory)):
        if is_complete(path):
            return path
        log.warning("skipping incomplete checkpoint %s (torn write); trying an older one", path)
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, objects: dict[str, Any],
                    device: torch.device) -> dict[str, Any]:
    load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    try:
        # weights_only=True: a checkpoint can carry tensors and plain data, never code to run.
        tensors = torch.load(path / "state.pt", map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path / 'state.pt'}: refused, it holds objects other than tensors and plain data "
            f"(loading it could run code). Delete this checkpoint to resume from an older one. ({exc})"
        ) from None
    for name, obj in objects.items():
        obj.load_state_dict(tensors[name])
    rng = tensors["rng"]
    rng["torch"] = rng["torch"].cpu()
    restore_rng(rng)
    return json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))


def prune(directory: Path, keep: int) -> None:
    complete = [p for p in checkpoints(directory) if is_complete(p)]
    for path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
