"""Crash-safe checkpoints: written to a temp dir, fsynced, renamed; a manifest marks them whole.

A checkpoint ``checkpoints/step-00000120/`` holds the model weights (safetensors), optimizer,
scheduler and balancer state (torch tensors, loaded with ``weights_only=True``: no pickled
code ever runs), and ``trainer_state.json`` (step, data positions, early stopping, RNG).
``manifest.json`` (polytask.manifest) is written last and lists every file with its size and
sha256; resume takes the newest checkpoint whose files match it and skips torn or corrupt ones
with a warning naming the bad file (manifests from before hashes: sizes only).
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

from polytask import manifest
from polytask.atomic import atomic_dir
from polytask.errors import CheckpointError

log = logging.getLogger(__name__)

MANIFEST = manifest.MANIFEST
STEP_DIR = re.compile(r"^step-(\d{8})$")
#: Every file a checkpoint holds: a step dir with nothing else is polytask's even if its
#: manifest is damaged (resume skipped it), so the run may write that step again.
CHECKPOINT_FILES = {"model.safetensors", "state.pt", "trainer_state.json", MANIFEST}


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
    damaged = final.is_dir() and set(manifest.listed_files(final)) <= CHECKPOINT_FILES
    with atomic_dir(final, "checkpoint", overwrite=damaged, step=step) as tmp:  # manifest: last
        save_model(model, str(tmp / "model.safetensors"))
        tensors = {name: obj.state_dict() for name, obj in objects.items()}
        tensors["rng"] = capture_rng()
        torch.save(tensors, tmp / "state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(trainer_state), encoding="utf-8")
    prune(Path(directory), keep)
    return final


def is_complete(path: Path) -> bool:
    """Every file of the manifest is there with its size (cheap: no hashing)."""
    return not manifest.problems(path, hashes=False)


def checkpoints(directory: Path) -> list[Path]:
    if not Path(directory).is_dir():
        return []
    found = [p for p in Path(directory).iterdir() if p.is_dir() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def latest_complete(directory: Path) -> Path | None:
    """The newest checkpoint whose files match their manifest's sizes and sha256."""
    for path in reversed(checkpoints(directory)):
        found = manifest.problems(path)
        if not found:
            return path
        log.warning("skipping checkpoint %s: %s; trying an older one", path, "; ".join(found))
    return None


def load_checkpoint(path: Path, model: torch.nn.Module, objects: dict[str, Any],
                    device: torch.device) -> dict[str, Any]:
    fix = "Delete this checkpoint directory to resume from an older one"
    try:
        load_model(model, str(path / "model.safetensors"), strict=True, device=str(device))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type
        raise CheckpointError(f"{path / 'model.safetensors'}: unreadable or not this model's weights "
                              f"({str(exc)[:300]}). {fix}") from None
    tensors = _load_state(path / "state.pt", device, fix)
    try:
        for name, obj in objects.items():
            obj.load_state_dict(tensors[name])
        rng = tensors["rng"]
        rng["torch"] = rng["torch"].cpu()
        restore_rng(rng)
        return json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"{path}: state does not fit this run or is damaged ({str(exc)[:300]}). "
                              f"{fix}") from None


def _load_state(path: Path, device: torch.device, fix: str) -> dict[str, Any]:
    try:
        # weights_only=True: a checkpoint can carry tensors and plain data, never code to run.
        tensors = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a refusal: the bytes are garbage
            raise CheckpointError(f"{path}: not a readable torch file (corrupt?) ({str(exc)[:200]}). "
                                  f"{fix}") from None
        raise CheckpointError(
            f"{path}: refused, it holds objects other than tensors and plain data "
            f"(loading it could run code). {fix}. ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - garbage raises IndexError, KeyError, RuntimeError...
        raise CheckpointError(f"{path}: not a readable torch file (corrupt?) ({type(exc).__name__}: "
                              f"{str(exc)[:200]}). {fix}") from None
    if not isinstance(tensors, dict):
        raise CheckpointError(f"{path}: holds a {type(tensors).__name__}, not a checkpoint's state. {fix}")
    return tensors


def prune(directory: Path, keep: int) -> None:
    complete = [p for p in checkpoints(directory) if is_complete(p)]
    for path in complete[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
