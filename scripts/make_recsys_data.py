"""Write the synthetic click/conversion data of examples/recsys (made here: no data set is
downloaded, and no installable package ships a small CTR data set).

    python scripts/make_recsys_data.py                      # -> examples/recsys/data
    python scripts/make_recsys_data.py --out DIR --rows 2000 --cvr-clicked-only

The same arguments always write the same bytes (one seeded NumPy generator, fixed formats).

Generative story:
- users have a latent taste vector u, an activity bias and an age (2% of ages are missing:
  an empty cell, which the tabular encoder maps to the column's unknown id);
- items belong to one of 12 categories, have a latent vector v near their category's centre, a
  popularity bias, a "buyability" vector w (partly v, partly item-specific) and a price whose
  level depends on the category;
- each impression has a context: hour of day and device;
- click ~ Bernoulli(sigmoid(1.5 u.v/sqrt(d) + user bias + item bias + hour + device - 1.4));
- conversion happens only after a click: P(convert | click) = sigmoid(1.5 u.w/sqrt(d)
  - 0.9 (log price - mean) + 0.6 desktop + 0.02 (age - 40) - 1.5).

Click (CTR) and conversion are related (both depend on the user's taste for the item) but not
the same (conversion also depends on price, device and age), which is what MMoE/PLE sharing is
for. By default ``conversion`` is labelled on every impression (1 = clicked and converted):
the task is trained on the entire impression space, as ESMM's CTCVR, so its predictions are
calibrated for every row served, without the sample selection bias of a CVR model fit on
clicked rows only. ``--cvr-clicked-only`` writes an empty ``conversion`` cell on non-clicked
rows instead: polytask then trains the conversion task on clicked rows only (partial labels),
i.e. a classic CVR = P(convert | click).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import numpy as np

COLUMNS = ["user_id", "item_id", "category", "device", "hour", "price", "age", "click", "conversion"]
FEATURES = COLUMNS[:-2]
DEVICES = ["mobile", "desktop", "tablet"]
DEVICE_CLICK = np.array([0.3, 0.0, -0.2])
DIM, USERS, ITEMS, CATEGORIES = 4, 200, 120, 12


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate(rows: int, seed: int, cvr_clicked_only: bool) -> tuple[list[dict[str, str]], np.ndarray]:
    """The rows, and each row's true P(click) and P(click and convert) ([rows, 2])."""
    rng = np.random.default_rng(seed)
    user_vec = rng.normal(size=(USERS, DIM))
    user_bias = rng.normal(scale=0.5, size=USERS)
    age = rng.integers(18, 71, size=USERS)
    age_missing = rng.random(USERS) < 0.02
    centres = rng.normal(size=(CATEGORIES, DIM))
    category = rng.integers(0, CATEGORIES, size=ITEMS)
    item_vec = centres[category] + 0.6 * rng.normal(size=(ITEMS, DIM))
    item_bias = rng.normal(scale=0.5, size=ITEMS)
    buy_vec = 0.6 * item_vec + 0.8 * rng.normal(size=(ITEMS, DIM))
    price_level = rng.uniform(1.5, 4.5, size=CATEGORIES)
    price = np.exp(price_level[category] + 0.4 * rng.normal(size=ITEMS))

    user = rng.integers(0, USERS, size=rows)
    item = rng.integers(0, ITEMS, size=rows)
    hour = rng.integers(0, 24, size=rows)
    device = rng.choice(len(DEVICES), size=rows, p=[0.6, 0.3, 0.1])
    taste = (user_vec[user] * item_vec[item]).sum(1) / np.sqrt(DIM)
    hour_effect = 0.6 * np.sin(2 * np.pi * (hour - 14) / 24)
    click_logit = 1.5 * taste + user_bias[user] + item_bias[item] + hour_effect + DEVICE_CLICK[device] - 1.4
    click = rng.random(rows) < sigmoid(click_logit)
    buy = (user_vec[user] * buy_vec[item]).sum(1) / np.sqrt(DIM)
    log_price = np.log(price[item])
    buy_logit = (1.5 * buy - 0.9 * (log_price - log_price.mean()) + 0.6 * (device == 1)
                 + 0.02 * (age[user] - 40) - 1.5)
    conversion = click & (rng.random(rows) < sigmoid(buy_logit))
    truth = np.stack([sigmoid(click_logit), sigmoid(click_logit) * sigmoid(buy_logit)], axis=1)

    out = []
    for i in range(rows):
        u, it = user[i], item[i]
        out.append({
            "user_id": f"u{u:03d}", "item_id": f"i{it:03d}", "category": f"c{category[it]:02d}",
            "device": DEVICES[device[i]], "hour": str(hour[i]), "price": f"{price[it]:.2f}",
            "age": "" if age_missing[u] else str(age[u]),
            "click": str(int(click[i])),
            "conversion": "" if cvr_clicked_only and not click[i] else str(int(conversion[i])),
        })
    return out, truth


def to_csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write(out: Path, rows: int = 20000, seed: int = 0, cvr_clicked_only: bool = False,
          dev_share: float = 0.1, test_share: float = 0.1) -> dict[str, float]:
    """train.csv / dev.csv / test.csv and predict.jsonl (5 test rows without labels). Returns
    the split sizes and the test AUC of the true probabilities: the best any model can reach."""
    from sklearn.metrics import roc_auc_score

    from polytask.atomic import write_text

    data, truth = generate(rows, seed, cvr_clicked_only)
    n_dev, n_test = int(rows * dev_share), int(rows * test_share)
    splits = {"train": data[n_dev + n_test:], "dev": data[:n_dev], "test": data[n_dev:n_dev + n_test]}
    for name, part in splits.items():
        write_text(out / f"{name}.csv", to_csv(part))
    inputs = [{**{k: row[k] for k in FEATURES}, "price": float(row["price"]),
               "age": int(row["age"]) if row["age"] else None} for row in splits["test"][:5]]
    write_text(out / "predict.jsonl", "".join(json.dumps(row) + "\n" for row in inputs))
    test, test_truth = splits["test"], truth[n_dev:n_dev + n_test]
    oracle = {f"oracle_{task}_auc": round(float(roc_auc_score([r[task] == "1" for r in test], test_truth[:, k])), 4)
              for k, task in enumerate(("click", "conversion")) if not cvr_clicked_only or k == 0}
    return {**{name: len(part) for name, part in splits.items()}, **oracle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples" / "recsys" / "data")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cvr-clicked-only", action="store_true",
                        help="label conversion on clicked rows only (empty cell elsewhere)")
    args = parser.parse_args()
    sizes = write(args.out, args.rows, args.seed, args.cvr_clicked_only)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
