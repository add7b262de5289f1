"""The unit every reader produces: one input example with its raw labels and its origin."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Record:
    """One input as read from a file.

    ``text`` is the input string; ``words`` the pre-split words when the dataset has them
    (CoNLL, intent/slot folders, a ``tokens:`` column); at least one of the two is set.
    ``fields`` holds the raw value of every label column the config asks for, ``None`` when the
    cell is empty or the key is absent (a partial label: that task does not train on it).
    ``source`` and ``line`` (1-based) point at the record in its file for error messages.
    """

    source: str
    line: int
    text: str | None = None
    words: list[str] | None = None
    text_pair: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    def input_text(self) -> str:
        return self.text if self.text is not None else " ".join(self.words or [])
