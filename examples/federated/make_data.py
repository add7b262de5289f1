"""Writes this example's per-client data (project-written, deterministic, no download): three
parties each holding their own posts in the style of the finance-monitor example
(scripts/make_finance_data.py), 240 training and 60 dev posts each.

Run: python examples/federated/make_data.py  (rewrites examples/federated/data/)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from make_finance_data import post  # noqa: E402

CLIENTS = {"bank": 11, "broker": 12, "desk": 13}  # name -> seed


def write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, seed in CLIENTS.items():
        rng = random.Random(seed)
        for split, n in (("train", 240), ("dev", 60)):
            rows = "".join(json.dumps(post(rng)) + "\n" for _ in range(n))
            (folder / f"{name}_{split}.jsonl").write_text(rows, encoding="utf-8")


if __name__ == "__main__":
    write(Path(__file__).parent / "data")
