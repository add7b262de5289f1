"""Writes the tiny Chinese dataset of this example (project-written, deterministic, no download).

- ``news_{train,dev,test}.jsonl``: one financial headline per line, ``{"text", "sentiment"}``
  with the labels 正面 (price up) / 负面 (price down); the text has no spaces.
- ``ner_{train,dev,test}.conll``: the same kind of sentences, one character per line with its
  BIO tag (LOC cities, ORG companies); a Latin name such as Apple is one line, one word.

Run: python examples/chinese/make_data.py  (rewrites examples/chinese/data/)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CITIES = ["北京", "上海", "深圳", "杭州", "广州"]
COMPANIES = ["腾讯", "阿里巴巴", "华为", "小米", "比亚迪", "Apple"]
UP, DOWN = ["上涨", "大涨", "走高"], ["下跌", "大跌", "走低"]
TEMPLATES = ["{city}的{org}股价{move}了", "{org}在{city}发布新产品，股价{move}",
             "今天{city}股市{move}，{org}领{move}", "受消息影响，{org}股价{move}"]
SIZES = {"train": 240, "dev": 48, "test": 48}


def sentence(rng: random.Random) -> tuple[str, list[tuple[str, str]], str]:
    """(text, [(word, tag)], sentiment): words are characters, or a whole Latin name."""
    up = rng.random() < 0.5
    move = rng.choice(UP if up else DOWN)
    template, city, org = rng.choice(TEMPLATES), rng.choice(CITIES), rng.choice(COMPANIES)
    pieces: list[tuple[str, str]] = []
    for part in template.replace("{", "|{").replace("}", "}|").split("|"):
        if part in ("{city}", "{org}"):
            name, kind = (city, "LOC") if part == "{city}" else (org, "ORG")
            words = [name] if name.isascii() else list(name)
            pieces += [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)]
        else:
            pieces += [(ch, "O") for ch in part.replace("{move}", move)]
    text = "".join(word for word, _ in pieces)
    return text, pieces, "正面" if up else "负面"


def write(folder: Path, seed: int = 7) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in SIZES.items():
        rows = [sentence(rng) for _ in range(n)]
        news = "".join(json.dumps({"text": t, "sentiment": s}, ensure_ascii=False) + "\n"
                       for t, _, s in rows)
        (folder / f"news_{split}.jsonl").write_text(news, encoding="utf-8")
        conll = "\n".join("".join(f"{w} {tag}\n" for w, tag in pieces) for _, pieces, _ in rows)
        (folder / f"ner_{split}.conll").write_text(conll, encoding="utf-8")


if __name__ == "__main__":
    write(Path(__file__).parent / "data")
