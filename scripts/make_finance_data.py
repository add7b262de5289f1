"""Writes the finance-monitor example data (project-written, deterministic, no download).

Templated news and social posts about listed companies. Each post has three labels, all
decided by the words the template drew:

- ``topic`` (classification): the company's sector: banking, tech, energy or crypto;
- ``sentiment`` (classification): negative / neutral / positive, from the verb (plunge, rally...);
- ``intensity`` (regression, 0..1): how strong the move is, from the adverb (slightly ...
  catastrophically), 0.05 for neutral posts.

Files (examples/finance_monitor/data/): train/dev/test.jsonl for training, and stream.jsonl:
one day of posts with ``id`` and ISO ``time`` (no labels) for ``polytask monitor``, with a
burst of negative banking news between 10:00 and 11:00 and strongly negative crypto posts
around 15:00 planted in otherwise mixed traffic.

Run: python scripts/make_finance_data.py [output_folder]
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

COMPANIES = {
    "banking": ["Northbank", "Crestline Bank", "Harbor Savings", "Meridian Financial"],
    "tech": ["Quantix", "Nimbus Software", "Vertex Chips", "Lumen Devices"],
    "energy": ["Solara Power", "Petrocore", "Windward Energy", "Gridline Utilities"],
    "crypto": ["Coinvault", "Blockridge", "Satoshi Markets", "Ledgerly"],
}
EVENTS = {
    "banking": ["loan losses", "a rate decision", "deposit outflows", "a capital review"],
    "tech": ["a product launch", "chip supply news", "a software outage", "cloud earnings"],
    "energy": ["oil price swings", "a pipeline report", "a solar contract", "winter demand"],
    "crypto": ["an exchange hack", "token listings", "a regulatory probe", "bitcoin volatility"],
}
VERBS = {"negative": ["plunge", "fall", "slump", "tumble"], "positive": ["rally", "rise", "soar", "climb"]}
NEUTRAL = ["are unchanged", "trade flat", "hold steady", "move sideways"]
ADVERBS = {"slightly": 0.2, "modestly": 0.35, "sharply": 0.7, "dramatically": 0.85,
           "catastrophically": 0.95}
TEMPLATES = ["{company} shares {verb} {adverb} after {event}",
             "Investors watch {company} as stocks {verb} {adverb} on {event}",
             "{company} {verb} {adverb} following {event}, analysts say",
             "Breaking: {company} stock {verb} {adverb} amid {event}"]
NEUTRAL_TEMPLATES = ["{company} shares {verb} after {event}",
                     "Investors watch {company} as stocks {verb} on {event}"]
SIZES = {"train": 1200, "dev": 200, "test": 200}


def post(rng: random.Random, topic: str | None = None, sentiment: str | None = None,
         adverb: str | None = None) -> dict:
    topic = topic or rng.choice(list(COMPANIES))
    sentiment = sentiment or rng.choice(["negative", "neutral", "positive"])
    company, event = rng.choice(COMPANIES[topic]), rng.choice(EVENTS[topic])
    if sentiment == "neutral":
        text = rng.choice(NEUTRAL_TEMPLATES).format(company=company, verb=rng.choice(NEUTRAL), event=event)
        intensity = 0.05
    else:
        adverb = adverb or rng.choice(list(ADVERBS))
        text = rng.choice(TEMPLATES).format(company=company, verb=rng.choice(VERBS[sentiment]),
                                            adverb=adverb, event=event)
        intensity = ADVERBS[adverb]
    return {"text": text, "topic": topic, "sentiment": sentiment, "intensity": intensity}


def stream(rng: random.Random) -> list[dict]:
    """One day (2024-05-06, UTC): a post every ~6 minutes, plus the planted bursts."""
    start = datetime(2024, 5, 6, tzinfo=timezone.utc)
    moments = [(start + timedelta(minutes=6 * i + rng.randint(0, 5)), {}) for i in range(240)]
    moments += [(start + timedelta(hours=10, minutes=7 * i + 2), {"topic": "banking", "sentiment": "negative",
                 "adverb": rng.choice(["sharply", "dramatically"])}) for i in range(6)]
    moments += [(start + timedelta(hours=15, minutes=4 * i + 1), {"topic": "crypto", "sentiment": "negative",
                 "adverb": "catastrophically"}) for i in range(4)]
    rows = []
    for n, (moment, forced) in enumerate(sorted(moments, key=lambda m: m[0]), start=1):
        rows.append({"id": f"p{n:04d}", "time": moment.isoformat().replace("+00:00", "Z"),
                     "text": post(rng, **forced)["text"]})
    return rows


def write(folder: Path, seed: int = 2024) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in SIZES.items():
        lines = "".join(json.dumps(post(rng)) + "\n" for _ in range(n))
        (folder / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    (folder / "stream.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stream(rng)), encoding="utf-8")


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else
          Path(__file__).resolve().parents[1] / "examples" / "finance_monitor" / "data")
