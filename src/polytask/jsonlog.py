"""Reading the append-only JSON-lines logs that polytask writes (metrics.jsonl).

``append_line`` (polytask.atomic) fsyncs each line, so a crash can tear only the last one: a
last line that does not parse is dropped with a warning. A bad line before it is not a torn
write but damage or an edit, and stops with its file:line and the fix.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from polytask.errors import CheckpointError

log = logging.getLogger(__name__)


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_log(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` as a dict ([] if there is no file)."""
    path = Path(path)
    if not path.is_file():
        return []
    raw = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    numbered = [(n, line) for n, line in enumerate(raw, 1) if line.strip()]
    entries = []
    for index, (number, line) in enumerate(numbered):
        entry = _parse(line)
        if entry is not None:
            entries.append(entry)
        elif index == len(numbered) - 1:
            log.warning("%s:%d: dropped a torn last line (a crash mid-write): %.80r", path, number, line)
        else:
            raise CheckpointError(
                f"{path}:{number}: not a JSON object ({line[:80]!r}), and not the last line, so not a "
                "torn write: the log is damaged. Fix or delete that line, or start a new output_dir")
    return entries
