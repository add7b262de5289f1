"""The manifest polytask writes last into every directory it writes (model, ONNX export,
checkpoint): what wrote it, each file's size and sha256.

It serves two ends. Integrity: a torn write (a size differs) or a corrupt one (a hash differs)
is found before the content is used. Ownership: an existing directory is replaced only when
its manifest says polytask wrote it and it holds no file the manifest does not list, so a
writer never deletes something a user put there. Directories written before manifests
existed are recognised by their own marker file (``legacy_kind``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
WRITER = "polytask"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def listed_files(root: Path) -> list[str]:
    """Every file under ``root`` as a relative POSIX path, the manifest excluded."""
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel != MANIFEST:
                found.append(rel)
    return sorted(found)


def write_manifest(root: Path, kind: str, **extra: Any) -> dict[str, Any]:
    files = listed_files(root)
    manifest = {"written_by": WRITER, "kind": kind, **extra,
                "files": {rel: (root / rel).stat().st_size for rel in files},
                "sha256": {rel: sha256_file(root / rel) for rel in files}}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest, or None if there is none or it is unreadable or malformed."""
    try:
        manifest = json.loads((Path(root) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return None
    return manifest


def problems(root: Path, hashes: bool = True) -> list[str]:
    """What does not match the manifest (empty: the directory is whole). Manifests from before
    hashes were recorded are checked on sizes only."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is None:
        return [f"{root / MANIFEST}: missing or unreadable"]
    sums = manifest.get("sha256") if hashes and isinstance(manifest.get("sha256"), dict) else {}
    found = []
    for rel, size in manifest["files"].items():
        path = root / rel
        try:
            if path.stat().st_size != size:
                found.append(f"{path}: {path.stat().st_size} bytes, the manifest says {size} (torn write)")
            elif rel in sums and sha256_file(path) != sums[rel]:
                found.append(f"{path}: content differs from its sha256 in the manifest (corrupt)")
        except OSError:
            found.append(f"{path}: missing")
    return found


def legacy_kind(root: Path) -> str | None:
    """The kind of a polytask directory written before manifests carried ``written_by``."""
    root = Path(root)
    manifest = read_manifest(root)
    if manifest is not None and "step" in manifest:
        return "checkpoint"
    if (root / "polytask.json").is_file():
        return "onnx" if (root / "onnx.json").is_file() else "model"
    return None


def ownership_problem(root: Path, kind: str) -> str | None:
    """Why polytask may not replace the existing directory ``root`` with a new ``kind``
    (None: it may: empty, or written by polytask as that kind with nothing added since)."""
    root = Path(root)
    if not root.is_dir():
        return f"{root} exists and is not a directory"
    if not any(root.iterdir()):
        return None
    manifest = read_manifest(root)
    if manifest is None or manifest.get("written_by") != WRITER:
        have = legacy_kind(root)
        if have == kind:
            return None
        return (f"{root} is not empty and was not written by polytask" if have is None
                else f"{root} holds a polytask {have}, not a {kind}")
    if manifest.get("kind") != kind:
        return f"{root} holds a polytask {manifest.get('kind')}, not a {kind}"
    extra = sorted(set(listed_files(root)) - set(manifest["files"]))
    if extra:
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        return f"{root} holds file(s) polytask did not write: {shown}"
    return None
