"""Δm: the average relative change of a multi-task model against single-task baselines
(Maninis et al., 2019; as used by Nash-MTL, FAMO and most MTL papers since).

    Δm = 100 / K · Σ_k (-1)^{l_k} (M_k - B_k) / B_k

over the K compared metrics, where M_k is the multi-task value, B_k the single-task (STL)
value and l_k = 1 when lower is better (an MSE that drops is a gain). Positive Δm = MTL is
better on average. Metrics whose baseline is 0 are skipped (the relative change is undefined).

Across seeds, polytask compares each seed of a method with the STL baseline averaged over
seeds, and reports the mean and the sample standard deviation of those Δm values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)


def delta_m(method: Mapping[str, float], baseline: Mapping[str, float],
            higher_is_better: Mapping[str, bool]) -> float:
    """Δm in percent over the metric keys of ``higher_is_better`` (e.g. ``intent/accuracy``)."""
    changes = []
    for key, higher in higher_is_better.items():
        if key not in method or key not in baseline:
            raise KeyError(f"metric {key!r} is missing from the {'method' if key not in method else 'baseline'}"
                           " results; compare only metrics both runs report")
        base = float(baseline[key])
        if base == 0:
            log.warning("Δm: skipping %s, its baseline is 0", key)
            continue
        change = (float(method[key]) - base) / abs(base)
        changes.append(change if higher else -change)
    if not changes:
        raise ValueError("Δm: no metric with a non-zero baseline to compare")
    return 100.0 * float(np.mean(changes))


def mean_metrics(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per-key mean over runs (seeds); a key counts where present."""
    keys = {k for run in runs for k in run}
    return {k: float(np.mean([run[k] for run in runs if k in run])) for k in sorted(keys)}


def delta_m_over_seeds(method_runs: Sequence[Mapping[str, float]], baseline_runs: Sequence[Mapping[str, float]],
                       higher_is_better: Mapping[str, bool]) -> tuple[float, float, list[float]]:
    """(mean, sample std (0 for one seed), per-seed values) of Δm against the seed-mean STL."""
    baseline = mean_metrics(baseline_runs)
    values = [delta_m(run, baseline, higher_is_better) for run in method_runs]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return float(np.mean(values)), std, values
