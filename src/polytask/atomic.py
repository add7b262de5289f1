"""Atomic file and directory writes: readers see the old content or the new, never half.

Every temp name is ``.<name>.<8 random chars>.tmp`` beside its target and is held under an
exclusive ``flock`` while it is written, so ``recover`` (run at train start and when a model
is loaded) can remove what a killed writer left without touching a write in progress.
What these functions create gets the permissions of the process umask, as ``open`` would.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from polytask.errors import OutputExistsError
from polytask.manifest import ownership_problem, write_manifest
from polytask.swap import exchange

_UMASK_LOCK = threading.Lock()
#: Messages of write failures that torch and safetensors raise as something other than OSError.
_DISGUISED_IO = ("unexpected pos", "basic_ios", "PytorchStreamWriter", "file write failed", "I/O error")


def current_umask() -> int:
    with contextlib.suppress(OSError, ValueError, StopIteration):  # Linux: read, don't touch
        with open("/proc/self/status", encoding="ascii") as status:
            return int(next(ln for ln in status if ln.startswith("Umask:")).split()[1], 8)
    with _UMASK_LOCK:  # elsewhere the only way to read it is to set it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600 whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync: a crash loses at most the line being written."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(Path(dirpath))


def apply_umask(root: Path) -> None:
    """Give ``root`` and everything in it the modes ``open``/``mkdir`` would under the umask:
    mkdtemp (0700) and the safetensors writer (0600) ignore it, so colleagues could not read."""
    mask = current_umask()
    for dirpath, _, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o666 & ~mask)


def as_os_error(exc: BaseException, where: Path) -> OSError | None:
    """An OSError for a write failure that torch (RuntimeError) or safetensors
    (SafetensorError) reports as its own type; None for anything else."""
    if isinstance(exc, OSError):
        return exc
    message = str(exc)
    if not isinstance(exc, RuntimeError) and type(exc).__name__ != "SafetensorError":
        return None
    if not any(marker in message for marker in _DISGUISED_IO):
        return None
    with contextlib.suppress(OSError):
        if "No space" in message or shutil.disk_usage(where).free < (1 << 20):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, f"write failed ({message.strip()[:200]})")


def check_export_target(source: str | Path, out_dir: str | Path, option: str, kind: str,
                        overwrite: bool, fix: str) -> None:
    """Refuse an export output that is, holds or lies inside the source model, or that holds
    anything but an earlier export of ``kind`` (unless ``overwrite``), before any work is done."""
    source, out = Path(source).resolve(), Path(out_dir).resolve()
    where = ("is" if out == source else "contains" if source.is_relative_to(out)
             else "is inside" if out.is_relative_to(source) else None)
    if where:
        raise OutputExistsError(f"{option} {out_dir}: {out} {where} the source model {source}; "
                                "export to a directory outside it (even --overwrite never touches it)")
    check_replaceable(out, kind, overwrite, fix=fix)


def check_replaceable(final: Path, kind: str, overwrite: bool, fix: str) -> None:
    """Refuse to replace ``final`` unless it is missing, empty, polytask's own ``kind``, or
    ``overwrite`` is set (never for a file, a symlink or the working directory's ancestors)."""
    if not final.exists() and not final.is_symlink():
        return
    problem = ownership_problem(final, kind)
    if problem is None:
        return
    if overwrite and final.is_dir() and not final.is_symlink() and not Path.cwd().is_relative_to(final):
        return
    raise OutputExistsError(f"{problem}; refusing to replace it. {fix}")


@contextlib.contextmanager
def atomic_dir(final: Path, kind: str, *, overwrite: bool = False,
               fix: str = "Write to another path, or move its content away first.",
               **meta: Any) -> Iterator[Path]:
    """Yield a temp dir beside ``final``; on success write its manifest (``kind`` and ``meta``,
    polytask.manifest), fsync it and swap it in.

    An existing ``final`` is replaced only if polytask wrote it as ``kind`` (or ``overwrite``),
    only after the new content is complete on disk, and by one atomic exchange where the
    filesystem has it: at every instant ``final`` is the old directory or the new one.
    """
    final = Path(os.path.abspath(final))
    check_replaceable(final, kind, overwrite, fix)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield tmp
            write_manifest(tmp, kind, **meta)
            apply_umask(tmp)
            fsync_tree(tmp)
        except Exception as exc:
            if (io := as_os_error(exc, final.parent)) is not None and io is not exc:
                raise io from exc
            raise
        _swap_in(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def _swap_in(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
    elif exchange(tmp, final):  # tmp now holds the old content
        shutil.rmtree(tmp, ignore_errors=True)
    else:  # two renames; a crash between them leaves .<name>.old, which recover() restores
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        held = os.open(final, os.O_RDONLY)
        try:
            fcntl.flock(held, fcntl.LOCK_EX)
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        finally:
            os.close(held)


def _leftover(name: str) -> tuple[str, str] | None:
    """(target name, "tmp" | "old") for a name atomic writes leave behind, else None."""
    if match := re.fullmatch(r"\.(.+)\.[a-z0-9_]{8}\.tmp", name):
        return match.group(1), "tmp"
    if match := re.fullmatch(r"\.(.+)\.old", name):
        return match.group(1), "old"
    return None


@contextlib.contextmanager
def _claimed(path: Path) -> Iterator[bool]:
    """True if no writer holds ``path``; this process then holds it until the block ends."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def recover(parent: Path, targets: Callable[[str], bool] | None = None) -> list[str]:
    """Clean what killed atomic writes left in ``parent``: temp names are removed, and a
    ``.<name>.old`` whose ``<name>`` is missing is renamed back. ``targets`` (a predicate on
    the target name) limits it to some targets. Returns what was done, for the log."""
    parent, done = Path(parent), []
    if not parent.is_dir():
        return done
    for entry in sorted(parent.iterdir()):
        found = _leftover(entry.name)
        if found is None or (targets is not None and not targets(found[0])):
            continue
        with _claimed(entry) as free, contextlib.suppress(OSError):
            if free:
                done.append(_clean(entry, parent / found[0], found[1]))
    return done


def _clean(entry: Path, target: Path, what: str) -> str:
    if what == "old" and entry.is_dir() and not target.exists():
        os.replace(entry, target)
        return f"restored {target} from {entry.name}"
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()
    return f"removed {entry}"
