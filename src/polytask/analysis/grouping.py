"""A task grouping from a task x task similarity: average-linkage agglomerative clustering
that never puts two tasks with a negative similarity in one group.

Clusters merge, most similar pair first, while the average similarity between them is above
``threshold`` (0: only tasks that help each other on average) and no pair across them is
negative. An asymmetric matrix (TAG affinity) is symmetrised as ``(A + Aᵀ) / 2``.
"""

from __future__ import annotations

import numpy as np


def symmetric(matrix: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(matrix), np.nan_to_num(matrix.T, nan=0.0), matrix)
    return (filled + filled.T) / 2


def suggest_groups(names: list[str], matrix: np.ndarray, threshold: float = 0.0) -> list[list[str]]:
    """Groups of task names (each a list in config order), largest first."""
    similarity = symmetric(np.asarray(matrix, dtype=float))
    clusters = [[i] for i in range(len(names))]
    while len(clusters) > 1:
        best, pair = threshold, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                block = similarity[np.ix_(clusters[a], clusters[b])]
                if np.isnan(block).any() or (block < 0).any():
                    continue
                if block.mean() > best:
                    best, pair = float(block.mean()), (a, b)
        if pair is None:
            break
        a, b = pair
        clusters[a] = sorted(clusters[a] + clusters[b])
        del clusters[b]
    clusters.sort(key=lambda c: (-len(c), c[0]))
    return [[names[i] for i in cluster] for cluster in clusters]
