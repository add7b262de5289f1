"""What makes one input of a request unreadable, found per input: a bad input is answered 422
naming ``inputs[i]`` before it can join (and fail) a micro-batch of other clients' inputs.

Two stages. ``text_problem`` runs on the request body (Unicode only, no tokenizer): blank text,
a lone UTF-16 surrogate (valid JSON, ``"\\ud800"``, but not Unicode: the tokenizer cannot take
it) and NUL. NUL is refused, not stripped: it is never part of text, it marks binary data or a
C string bug, and logs and databases downstream choke on it. Other control and format
characters are left to the tokenizer's normaliser; ``tokenless`` (run in the model thread, as
the tokenizer is not safe to call from two threads at once) then refuses an input that the
normaliser reduces to nothing, whose prediction would be the model's answer to an empty string.
"""

from __future__ import annotations

import re
from typing import Any

from polytask.data.records import Record

_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(text: str, blank_ok: bool = False) -> str | None:
    """Why ``text`` cannot be read as model input (said of the input, e.g. "is blank"), or None."""
    if not blank_ok and not text.strip():
        return "is blank; send at least one non-space character"
    if found := _SURROGATE.search(text):
        return (f"has a lone UTF-16 surrogate U+{ord(found.group()):04X} at character {found.start()}, "
                "which is not Unicode text: send both halves of a surrogate pair, or drop it")
    if (at := text.find("\x00")) >= 0:
        return f"has a NUL character (U+0000) at character {at}; NUL is never text: remove it"
    return None


def tokenless(tokenizer: Any, records: list[Record]) -> dict[int, str]:
    """Position in ``records`` -> why that input gives the tokenizer nothing to read.

    Records come from ``schema.to_records``: ``line`` is the 1-based index in ``inputs``.
    """
    if hasattr(tokenizer, "encode_records"):  # tabular rows: one id per column, never empty
        return {}
    problems: dict[int, str] = {}
    for part in ("text", "text_pair", "words"):
        rows = [i for i, r in enumerate(records) if getattr(r, part) is not None]
        if not rows:
            continue
        values = [getattr(records[i], part) for i in rows]
        encoded = tokenizer(values, add_special_tokens=False, is_split_into_words=part == "words",
                            truncation=False, verbose=False)
        for i, ids in zip(rows, encoded["input_ids"]):
            if not ids:
                where = "" if part == "text" else ".tokens" if part == "words" else ".text_pair"
                problems.setdefault(i, f"inputs[{records[i].line - 1}]{where} has no token left after "
                                    "the tokenizer's normalisation (only characters the model ignores, "
                                    "such as control or zero-width ones): send readable text")
    return problems
