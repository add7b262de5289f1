"""The run directory (``train.output_dir``): never mix two runs in it, never delete what
polytask did not write there, and clean what a killed run left.

A fresh run refuses a directory that already holds a run (any of ``RUN_MARKERS``): its
checkpoints would count as newer than the new run's, ``--resume`` would resume it and
metrics.jsonl would mix both. ``--overwrite`` (``overwrite=True``) removes the previous run's
files, and only those: ``RUN_FILES``, ``model/`` if its manifest shows polytask wrote it as is,
and the ``checkpoints/step-*`` directories; anything else there (your notes, relatedness/,
bench/, tracker stores, which keep one entry per run) is kept. If ``model/`` or a checkpoint
holds files polytask did not write, nothing is removed and the run is refused.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from polytask.atomic import recover
from polytask.errors import ConfigError, OutputExistsError
from polytask.manifest import listed_files, ownership_problem
from polytask.training.checkpoint import CHECKPOINT_FILES, STEP_DIR

log = logging.getLogger(__name__)

RUN_FILES = ("metrics.jsonl", "config.yaml", "results.json", "report.html", "promotion.json")
RUN_MARKERS = ("checkpoints", "model", "metrics.jsonl", "config.yaml", "results.json")


def check_run_dir(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a fresh run into a directory holding a run, unless ``overwrite``."""
    if resume and overwrite:
        raise ConfigError("--resume continues the run in train.output_dir and --overwrite replaces "
                          "it; pass one of them")
    if resume:
        return
    if overwrite:  # refuse on every process before rank 0 removes anything
        if refuse := removable(out)[1]:
            raise OutputExistsError(f"--overwrite: {'; '.join(refuse)}; nothing was removed. Move "
                                    "those files away, or set train.output_dir to a new directory")
        return
    found = [name for name in RUN_MARKERS if (Path(out) / name).exists()]
    if found:
        raise OutputExistsError(
            f"train.output_dir {out} already holds a run ({', '.join(found)}). Continue it with "
            "--resume (resume=True), replace it with --overwrite (overwrite=True: removes only "
            "what polytask wrote there), or set train.output_dir to a new directory")


def removable(out: Path) -> tuple[list[Path], list[str]]:
    """(what --overwrite removes, why it must not): the previous run's entries only."""
    out, remove, refuse = Path(out), [], []
    remove += [out / name for name in RUN_FILES if (out / name).is_file()]
    if (out / "model").exists():
        problem = ownership_problem(out / "model", "model")
        (refuse.append(problem) if problem else remove.append(out / "model"))
    checkpoints = out / "checkpoints"
    if checkpoints.is_dir():
        for path in sorted(checkpoints.iterdir()):
            if not (path.is_dir() and STEP_DIR.match(path.name)):
                continue
            unknown = set(listed_files(path)) - CHECKPOINT_FILES
            (refuse.append(f"{path} holds file(s) polytask did not write: {sorted(unknown)}")
             if unknown else remove.append(path))
    return remove, refuse


def clear_run(out: Path) -> None:
    """``--overwrite``: remove the previous run's files (see the module docstring)."""
    check_run_dir(out, resume=False, overwrite=True)
    remove = removable(out)[0]
    for path in remove:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    checkpoints = Path(out) / "checkpoints"
    if checkpoints.is_dir() and not any(checkpoints.iterdir()):
        checkpoints.rmdir()
    if remove:
        log.info("--overwrite: removed the previous run's %s", ", ".join(p.name for p in remove))


def recover_run(out: Path) -> None:
    """Remove what killed writes left (temp dirs and files) and restore a model/ or a
    checkpoint whose swap was cut between its two renames."""
    known = {"model", *RUN_FILES}
    done = recover(out, lambda name: name in known)
    done += recover(Path(out) / "checkpoints", lambda name: bool(STEP_DIR.match(name)))
    for line in done:
        log.warning("leftover of an interrupted write: %s", line)
