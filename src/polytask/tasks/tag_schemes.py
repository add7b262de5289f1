"""Tagging schemes of token tasks: which tags a scheme allows, which tag may follow which,
how spans are read back, and how seqeval scores them.

A tag is ``O`` (outside) or ``<prefix>-<type>``; the prefix letters of each scheme:

==========  ========  =======================================================
scheme      prefixes  an entity is
==========  ========  =======================================================
bio (IOB2)  B I       B-X, then I-X...                   (scored as conlleval)
iob1        B I       I-X...; B-X only right after another X entity
ioe2        I E       I-X..., then E-X
ioe1        I E       I-X...; E-X only right before another X entity
iobes       B I E S   B-X I-X... E-X, or S-X alone
bmes        B M E S   as iobes with M for I (Chinese NER: Resume, MSRA, Weibo)
bilou       B I L U   as iobes with L for E and U for S
none        -         no entities: tags are classes of their own (POS)
==========  ========  =======================================================

``bio`` keeps seqeval's default (conlleval) reading, as every published CoNLL/SNIPS number
does; the other schemes are scored in seqeval's strict mode with their scheme class, so a
predicted entity counts only if it is well formed (an IOBES ``B-X I-X`` without its ``E-X`` is
no entity). ``bmes`` is scored as IOBES with M- read as I-.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import BILOU, IOB1, IOB2, IOBES, IOE1, IOE2, Entities, Token

SCHEME_NAMES = ("bio", "iob1", "ioe1", "ioe2", "iobes", "bmes", "bilou", "none")
DEFAULT = "bio"


@dataclass(frozen=True)
class Roles:
    """The prefix letter of each role a tag can play inside an entity ('' = not used)."""

    begin: str = ""
    inside: str = ""
    last: str = ""
    single: str = ""

    @property
    def letters(self) -> set[str]:
        return {c for c in (self.begin, self.inside, self.last, self.single) if c}


ROLES = {"bio": Roles("B", "I"), "iob1": Roles("B", "I"), "ioe1": Roles(inside="I", last="E"),
         "ioe2": Roles(inside="I", last="E"), "iobes": Roles("B", "I", "E", "S"),
         "bmes": Roles("B", "M", "E", "S"), "bilou": Roles("B", "I", "L", "U"), "none": Roles()}
SEQEVAL: dict[str, type[Token]] = {"iob1": IOB1, "ioe1": IOE1, "ioe2": IOE2, "iobes": IOBES,
                                   "bmes": IOBES, "bilou": BILOU}


def split_tag(tag: str | None) -> tuple[str, str]:
    """(prefix, type) of a tag: ('O', '') for O (and for the start/end of a sentence, None),
    ('', tag) for a tag without a one-letter prefix (a POS tag)."""
    if tag is None or tag == "O":
        return "O", ""
    prefix, dash, kind = tag.partition("-")
    return (prefix, kind) if dash and len(prefix) == 1 and kind else ("", tag)


def _closed(r: Roles, a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Schemes that mark both ends (iobes, bmes, bilou): open entities continue, closed ones don't."""
    if a[0] in (r.begin, r.inside):
        return b[0] in (r.inside, r.last) and b[1] == a[1]
    return b[0] in ("O", r.begin, r.single)


def allowed(scheme: str, previous: str | None, tag: str | None) -> bool:
    """Whether ``tag`` may follow ``previous`` under the scheme (None: the sentence's start/end)."""
    r, a, b = ROLES[scheme], split_tag(previous), split_tag(tag)
    if scheme == "none" or previous is None and tag is None:
        return True
    if scheme in ("iobes", "bmes", "bilou"):
        return _closed(r, a, b)
    if scheme == "bio":
        return b[0] != "I" or (a[0] in ("B", "I") and a[1] == b[1])
    if scheme == "iob1":
        return b[0] != "B" or (a[0] in ("B", "I") and a[1] == b[1])
    if scheme == "ioe2":
        return a[0] != "I" or (b[0] in ("I", "E") and b[1] == a[1])
    return a[0] != "E" or (b[0] in ("I", "E") and b[1] == a[1])  # ioe1


def foreign_tags(scheme: str, tags: list[str] | set[str]) -> list[str]:
    """Tags that the scheme cannot contain (wrong prefix, or no prefix in a span scheme)."""
    if scheme == "none":
        return []
    letters = ROLES[scheme].letters
    return sorted({t for t in tags if t != "O" and split_tag(t)[0] not in letters})


def ill_formed_at(scheme: str, tags: list[str]) -> int | None:
    """Index of the first tag that cannot follow its predecessor (len(tags): the last cannot end
    a sentence), or None when the sequence is well formed."""
    for i, (a, b) in enumerate(zip([None, *tags], [*tags, None])):
        if not allowed(scheme, a, b):
            return i
    return None


def fitting_schemes(sequences: list[list[str]]) -> list[str]:
    """The schemes under which every sequence is well formed, most used first; ``none`` when
    no span scheme fits."""
    tags = {t for seq in sequences for t in seq}
    fits = [s for s in ("iobes", "bmes", "bilou", "bio", "iob1", "ioe2", "ioe1")
            if not foreign_tags(s, tags) and all(ill_formed_at(s, q) is None for q in sequences)]
    return fits or ["none"]


def _for_seqeval(scheme: str, sequences: list[list[str]]) -> list[list[str]]:
    if scheme != "bmes":
        return [list(s) for s in sequences]
    return [["I" + t[1:] if t.startswith("M-") else t for t in s] for s in sequences]


def entities(scheme: str, tags: list[str]) -> list[dict[str, Any]]:
    """The entities of one tag sequence, read as the scheme reads them (end exclusive)."""
    if scheme == "none":
        return []
    if scheme == "bio":
        return [{"type": k, "start": s, "end": e + 1} for k, s, e in get_entities(list(tags))]
    found = Entities(_for_seqeval(scheme, [tags]), SEQEVAL[scheme]).entities[0]
    return [{"type": e.tag, "start": e.start, "end": e.end} for e in found]


def _strict(scheme: str) -> dict[str, Any]:
    return {} if scheme == "bio" else {"mode": "strict", "scheme": SEQEVAL[scheme]}


def span_report(scheme: str, golds: list[list[str]], predictions: list[list[str]]) -> dict[str, Any]:
    """seqeval's per-entity-type report under the scheme ({} when neither side has an entity:
    seqeval would warn and divide by zero)."""
    golds, predictions = _for_seqeval(scheme, golds), _for_seqeval(scheme, predictions)
    if not any(get_entities(golds) + get_entities(predictions)):
        return {}
    return classification_report(golds, predictions, zero_division=0, output_dict=True, **_strict(scheme))


def span_metrics(scheme: str, golds: list[list[str]], predictions: list[list[str]]) -> dict[str, float]:
    """Entity precision, recall and F1 (micro over entities) under the scheme."""
    golds, predictions = _for_seqeval(scheme, golds), _for_seqeval(scheme, predictions)
    strict = _strict(scheme)
    return {name: float(fn(golds, predictions, zero_division=0, **strict))
            for name, fn in (("f1", f1_score), ("precision", precision_score),
                             ("recall", recall_score))}
