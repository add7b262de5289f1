"""Tumbling windows: which window each item falls in.

- Time windows of ``size`` seconds are aligned on the Unix epoch (UTC): window k covers
  ``[k * size, (k + 1) * size)``. An item stamped exactly on a boundary opens the next window.
- Count windows of ``items`` items: window k holds stream positions
  ``[k * items, (k + 1) * items)`` (stream positions, counting every item; after sorting
  when ``out_of_order: sort`` sorts the stream by time).

Timestamps are numbers (seconds since the epoch) or ISO 8601 strings; a string without a
time zone is read as UTC.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from polytask.monitoring.rules import WindowSpec


def parse_time(value: Any) -> float:
    """Seconds since the epoch; ValueError with the reason when ``value`` is not a timestamp."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"not a finite timestamp: {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    raise ValueError(f"not a timestamp: {type(value).__name__} {value!r}")


def window_index(spec: WindowSpec, time: float | None, position: int) -> int:
    if spec.size is not None:
        return math.floor(time / spec.size)  # type: ignore[operator]
    return position // spec.items  # type: ignore[operator]


def window_bounds(spec: WindowSpec, index: int) -> dict[str, Any]:
    if spec.size is not None:
        start, end = index * spec.size, (index + 1) * spec.size
        return {"kind": "time", "start": iso(start), "end": iso(end)}
    return {"kind": "items", "start": index * spec.items, "end": (index + 1) * spec.items}


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()
