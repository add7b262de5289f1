"""Build the small demo data packaged in polytask/data/demo from the SNIPS benchmark.

Run from the project root with the SNIPS folder (JointBERT layout) as argument:
    python scripts/make_demo_data.py ../shared/data/snips
Takes a stratified, seeded subset: per intent 200 train / 40 dev utterances from SNIPS train
and dev, 40 test from SNIPS test, for the intent + slot tasks (one JSONL file per split, both
tasks on the same utterances); and a disjoint set of other SNIPS train utterances labelled with
a coarse domain (music / film_books / services) for a third task read from other files.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

DOMAIN = {"PlayMusic": "music", "AddToPlaylist": "music", "SearchCreativeWork": "film_books",
          "SearchScreeningEvent": "film_books", "RateBook": "film_books",
          "GetWeather": "services", "BookRestaurant": "services"}


def read(folder: Path) -> list[dict]:
    words = (folder / "seq.in").read_text().splitlines()
    tags = (folder / "seq.out").read_text().splitlines()
    intents = (folder / "label").read_text().splitlines()
    return [{"tokens": w.split(), "intent": i.strip(), "slots": t.split()}
            for w, t, i in zip(words, tags, intents)]


def stratified(rows: list[dict], per_intent: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    by_intent = defaultdict(list)
    for row in rows:
        by_intent[row["intent"]].append(row)
    chosen, rest = [], []
    for intent in sorted(by_intent):
        items = by_intent[intent][:]
        rng.shuffle(items)
        chosen += items[:per_intent]
        rest += items[per_intent:]
    rng.shuffle(chosen)
    return chosen, rest


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main(snips: Path, out: Path) -> None:
    rng = random.Random(13)
    train, rest = stratified(read(snips / "train"), 200, rng)
    dev, _ = stratified(read(snips / "dev"), 40, rng)
    test, _ = stratified(read(snips / "test"), 40, rng)
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        write(out / f"nlu_{name}.jsonl", rows)
    domain_rows = [{"text": " ".join(r["tokens"]), "domain": DOMAIN[r["intent"]]} for r in rest]
    rng.shuffle(domain_rows)
    for name, rows in (("train", domain_rows[:600]), ("dev", domain_rows[600:740]),
                       ("test", domain_rows[740:880])):
        write(out / f"domain_{name}.jsonl", rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parents[1] / "src/polytask/data/demo")
