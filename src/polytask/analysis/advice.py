"""Per-pair advice: does training task ``source`` with task ``target`` help, hurt or neither?

From the transfer matrix when it was measured (``analysis/transfer.py``): ``helps`` when the
95 % interval over seeds lies above 0, ``hurts`` when below, ``neutral`` otherwise.

Otherwise from the cheap probe (``polytask relatedness --steps``): ``hurts`` when ``step_share``
is below ``STEP_SHARE_HURTS`` (a joint step keeps less than half of the target's single-task
progress: the source's gradient is much larger and not aligned, a pure-noise regression
target being the textbook case), ``neutral`` otherwise. The cheap probe never says ``helps``,
and TAG affinity is quoted but not used: on two identical tasks with their own heads its
window interval excluded 0 on the negative side (tests/unit/test_transfer.py).

The cheap verdicts carry ``CHEAP_RELIABILITY``: what has been measured of their agreement
with real transfer (docs/relatedness.md), so a user knows how far to trust them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

STEP_SHARE_HURTS = 0.5
CHEAP_RELIABILITY = (
    "cheap probe, not measured transfer: step_share caught a dominating noise task on the toy pairs "
    "of tests/unit/test_transfer.py and nothing else is known of it; tag_affinity's sign did not "
    "predict transfer there nor on POS/NER (issue 23); run --pairwise-steps to measure "
    "(docs/relatedness.md)")
ADVICE = ("train them in separate groups, give each a task-specific layer (sharing: hierarchical), "
          "or down-weight the source (weighting), or run `polytask relatedness --pairwise-steps N` "
          "to measure the transfer")


def _verdict(low: float, high: float) -> str:
    return "helps" if low > 0 else "hurts" if high < 0 else "neutral"


def from_transfer(source: str, target: str, i: int, j: int, transfer: dict[str, Any]) -> dict[str, Any]:
    mean, low, high = (float(transfer[k][j, i]) for k in ("mean", "low", "high"))
    seeds, steps = transfer["seeds"], transfer["steps"]
    span = f"95% CI {low:+.2%} .. {high:+.2%}" if np.isfinite(low) else "one seed: no interval"
    return {"source": source, "target": target, "verdict": _verdict(low, high) if np.isfinite(mean) else "neutral",
            "signal": "transfer", "value": mean,
            "confidence": f"measured transfer {mean:+.2%} of {target}'s dev metric ({span}; "
                          f"{seeds} seed(s), {steps} steps)"}


def from_probe(source: str, target: str, i: int, j: int, signals: dict[str, np.ndarray],
               spread: dict[str, np.ndarray]) -> dict[str, Any] | None:
    share = float(signals["step_share"][j, i]) if "step_share" in signals else np.nan
    if share < STEP_SHARE_HURTS:
        return {"source": source, "target": target, "verdict": "hurts", "signal": "step_share", "value": share,
                "confidence": f"step_share {share:.2f} < {STEP_SHARE_HURTS}: a joint step keeps only "
                              f"{share:.0%} of {target}'s progress ({source}'s gradient dominates); "
                              + CHEAP_RELIABILITY}
    if not np.isfinite(share):
        return None
    tag = float(signals["tag_affinity"][j, i]) if "tag_affinity" in signals else np.nan
    half = float(spread["tag_affinity"][j, i]) if "tag_affinity" in spread else np.nan
    return {"source": source, "target": target, "verdict": "neutral", "signal": "step_share", "value": share,
            "confidence": f"step_share {share:.2f} >= {STEP_SHARE_HURTS}; tag_affinity {tag:+.2e} ± {half:.1e} "
                          "over the probe window (not used for a verdict: its interval excluded 0 with the "
                          "wrong sign on identical tasks); " + CHEAP_RELIABILITY}


def advise(names: list[str], signals: dict[str, np.ndarray], spread: dict[str, np.ndarray],
           transfer: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One entry per ordered pair (source -> target) that a signal speaks about."""
    out = []
    for i, target in enumerate(names):
        for j, source in enumerate(names):
            if i == j:
                continue
            entry = (from_transfer(source, target, i, j, transfer) if transfer
                     else from_probe(source, target, i, j, signals, spread))
            if entry is not None:
                entry["value"] = None if not np.isfinite(entry["value"]) else round(entry["value"], 6)
                if entry["verdict"] == "hurts":
                    entry["what_to_do"] = ADVICE
                out.append(entry)
    return out


def reliability(names: list[str], signals: dict[str, np.ndarray]) -> dict[str, Any]:
    """Spearman rank correlation of each cheap signal with the measured transfer over the
    ordered pairs where both are defined (vocab_jsd is a divergence: expect a negative ρ)."""
    measured = signals["transfer"]
    off = ~np.eye(len(names), dtype=bool)
    out = {}
    for key, matrix in signals.items():
        if key == "transfer":
            continue
        both = off & np.isfinite(matrix) & np.isfinite(measured)
        varied = both.sum() >= 3 and np.ptp(matrix[both]) > 0 and np.ptp(measured[both]) > 0
        rho = stats.spearmanr(matrix[both], measured[both]).statistic if varied else np.nan
        out[key] = {"spearman": None if not np.isfinite(rho) else round(float(rho), 4), "pairs": int(both.sum())}
    return out
