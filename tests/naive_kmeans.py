"""Slow, obvious NumPy twins of the numba kernels (engine/kmeans/_kernels.py)."""

from __future__ import annotations

import numpy as np


def assign(
    X: np.ndarray, centers: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Labels, inertia, per-centre weighted sums and weights, all in float64."""
    X64, C64 = X.astype(np.float64), centers.astype(np.float64)
    d = ((X64[:, None, :] - C64[None, :, :]) ** 2).sum(axis=2)
    labels = d.argmin(axis=1)
    inertia = float((weights * d[np.arange(len(X)), labels]).sum())
    k = centers.shape[0]
    sums = np.zeros((k, X.shape[1]))
    seen = np.zeros(k)
    for i, c in enumerate(labels):
        sums[c] += weights[i] * X64[i]
        seen[c] += weights[i]
    return labels, inertia, sums, seen


def minibatch_step(
    X: np.ndarray,
    batch: np.ndarray,
    batch_weights: np.ndarray,
    centers64: np.ndarray,
    weight_sums: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New centres and weight sums after one Sculley step, and the batch labels."""
    labels, _, sums, seen = assign(X[batch], centers64.astype(X.dtype), batch_weights)
    centers = centers64.copy()
    totals = weight_sums.copy()
    for c in range(centers.shape[0]):
        if seen[c] > 0:
            total = weight_sums[c] + seen[c]
            centers[c] = (centers64[c] * weight_sums[c] + sums[c]) / total
            totals[c] = total
    return centers, totals, labels


def min_sq_distances(X: np.ndarray, centers: np.ndarray) -> np.ndarray:
    d = ((X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None, :, :]) ** 2).sum(
        axis=2
    )
    return d.min(axis=1)


def kmeans_plusplus(
    X: np.ndarray, weights: np.ndarray, first: int, uniforms: np.ndarray, k: int
) -> np.ndarray:
    """Greedy k-means++ with the given random numbers, written the obvious way."""
    X64 = X.astype(np.float64)
    sq = lambda point: ((X64 - point) ** 2).sum(axis=1)  # noqa: E731
    centers = [X64[first]]
    closest = sq(X64[first])
    for c in range(1, k):
        cdf = np.cumsum(weights * closest)
        best = None
        for u in uniforms[c - 1]:
            if cdf[-1] > 0:
                candidate = np.searchsorted(cdf, u * cdf[-1], side="left")
            else:
                weight_cdf = np.cumsum(weights) / weights.sum()
                candidate = np.searchsorted(weight_cdf, u, side="right")
            candidate = min(candidate, len(X) - 1)
            trial = np.minimum(closest, sq(X64[candidate]))
            potential = np.cumsum(weights * trial)[-1]
            if best is None or potential < best[0]:
                best = (potential, candidate, trial)
        assert best is not None
        centers.append(X64[best[1]])
        closest = best[2]
    return np.array(centers)
