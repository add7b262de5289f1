"""The unit every reader produces: one input example with its raw labels and its origin."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Record:
    """One input as read from a file.

    ``text`` is the input string; ``words`` the pre-split words when the dataset has them
    (CoNLL, intent/slot folders, a ``tokens:`` column); at least one of the two is set, or,
    for tabular datasets (``categorical:``/``numeric:``), ``features`` instead.
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
    #: Tabular inputs instead of text: column -> clean value (str, float, or None = missing).
    features: dict[str, Any] | None = None

    def input_text(self) -> str:
        return self.text if self.text is not None else " ".join(self.words or [])


#: Characters written without spaces between words: CJK symbols and punctuation, kana, CJK
#: ideographs (with extensions A-F and compatibility forms), full-width forms. The Han ranges
#: are those BERT's tokenizer splits one by one (``tokenize_chinese_chars``).
_CJK = ("\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
        "\U00020000-\U0002fa1f")
_CJK_PIECES = re.compile(f"[{_CJK}]|[^{_CJK}]+")
_HAS_CJK = re.compile(f"[{_CJK}]")


def split_words(text: str) -> list[str]:
    """The words of a text, the units token tasks tag: whitespace-separated runs, except that
    every CJK character is a word of its own (Chinese has no spaces; a Chinese NER corpus tags
    each character), while a Latin or digit run inside Chinese text stays one word:
    ``"我在Apple工作"`` -> ``["我", "在", "Apple", "工", "作"]``. Text without CJK characters
    splits exactly like ``str.split()``."""
    words = text.split()
    if not _HAS_CJK.search(text):
        return words
    return [piece for word in words for piece in _CJK_PIECES.findall(word)]
