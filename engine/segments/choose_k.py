"""Choosing k: fit every candidate k and keep the best silhouette on a fixed sample.

k="auto" fits k = 3..10 (5 initialisations each) and keeps the k with the best silhouette on
a fixed-seed sample of 4,000 users (k = 2 is left out: it almost always splits buyers from
non-buyers, which an analyst already knows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import polars as pl
from sklearn.metrics import adjusted_rand_score, pairwise_distances

from engine.kmeans import FAST_SETTINGS, InMemoryRows, MiniBatchKMeans, RowSource, map_runs

K_MIN, K_MAX = 3, 10
N_RUNS = 5  # independent K-Means fits per k, the lowest inertia kept
STABILITY_SEEDS = 5  # the fit of the chosen k is repeated with this many seeds...
STABILITY_ROWS = 50_000  # ...on a uniform sample of this many users
SILHOUETTE_SAMPLE = 4_000
CHOOSE_K_ROWS = 200_000  # larger inputs choose k on a uniform sample of this many users
# Reads the labels that a fit left in a RowSource, at given rows.
LabelsAt = Callable[[Any, np.ndarray], np.ndarray]


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient, as scikit-learn's ``silhouette_score`` with
    ``metric="precomputed"`` defines it (0 for a point alone in its cluster), from a square
    matrix of pairwise distances: the per-cluster distance sums are one matrix product,
    faster than scikit-learn's chunked reduction on the silhouette sample."""
    n = labels.size
    present, codes = np.unique(labels, return_inverse=True)
    onehot = np.zeros((n, present.size), dtype=distances.dtype)
    onehot[np.arange(n), codes] = 1.0
    # (n, k): distances to each cluster's points, summed in the distances' precision (BLAS)
    sums = (distances @ onehot).astype(np.float64)
    sizes = np.bincount(codes).astype(np.float64)
    own_size = sizes[codes]
    intra = sums[np.arange(n), codes] / np.maximum(own_size - 1, 1)
    mean_to = sums / sizes
    mean_to[np.arange(n), codes] = np.inf
    nearest_other = mean_to.min(axis=1)
    with np.errstate(invalid="ignore"):  # 0 / 0 for points that coincide: scored 0
        scores = (nearest_other - intra) / np.maximum(intra, nearest_other)
    scores[own_size == 1] = 0.0
    return float(np.nan_to_num(scores).mean())


def _kmeans(k: int, seed: int) -> MiniBatchKMeans:
    """The segments' K-Means: ecomscale's FAST_SETTINGS, best of N_RUNS independent fits."""
    return MiniBatchKMeans(k, n_runs=N_RUNS, random_state=seed, **FAST_SETTINGS)


def _labels_in_memory(labels: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return labels[rows]


def choose_k(
    data: RowSource,
    seed: int,
    k_values: range = range(K_MIN, K_MAX + 1),
    labels_at: LabelsAt = _labels_in_memory,
) -> tuple[int, tuple[MiniBatchKMeans, Any] | None, pl.DataFrame]:
    """Fit every k; keep the one with the best silhouette (sample of SILHOUETTE_SAMPLE rows).

    With more than CHOOSE_K_ROWS rows, the search runs on a uniform sample of that many
    (fetched once): the silhouette is measured on a small sample anyway, and the centres of
    a fit on 200k users barely move with millions more, while every fit would cost
    n / 200k times as much.

    Args:
        data: the prepared rows (``InMemoryRows`` or a distributed source).
        seed: seeds every fit and both samples.
        k_values: the k to try.
        labels_at: reads the labels a fit left in ``data`` at given rows.

    Returns:
        The best k (ties: the smaller), its fit on ``data`` as (model, the labels handle
        of ``fit_rows``) when the search ran on all rows (None after a sample: the caller
        fits the k on all rows), and every k's scores.
    """
    n = data.n_samples
    rng = np.random.default_rng(seed)
    if n > CHOOSE_K_ROWS:
        rows = np.sort(rng.choice(n, size=CHOOSE_K_ROWS, replace=False))
        search = np.ascontiguousarray(data.take(rows))
        data, labels_at = InMemoryRows(search, np.ones(1)), _labels_in_memory
    size = min(SILHOUETTE_SAMPLE, data.n_samples)
    sample = np.sort(rng.choice(data.n_samples, size=size, replace=False))
    # The silhouette sample is the same for every k: its distances are computed once.
    sample_distances = pairwise_distances(data.take(sample))
    best: dict[str, Any] = {}  # only the best fit so far is kept (labels can be n-sized)
    lock = threading.Lock()  # fits may run in driver threads (map_runs)

    def score(k: int) -> dict[str, Any]:
        model = _kmeans(k, seed)
        handle = model.fit_rows(data)
        labels = labels_at(handle, sample)
        single = len(np.unique(labels)) == 1
        score = -1.0 if single else silhouette(sample_distances, labels)
        with lock:
            if not best or (score, -k) > (best["silhouette"], -best["k"]):
                best.update(k=k, silhouette=score, model=model, handle=handle)
        return {"k": k, "inertia": model.inertia_, "silhouette": score}

    scores = pl.DataFrame(map_runs(data, score, [k for k in k_values if k < n]))
    fitted = (best["model"], best["handle"]) if data.n_samples == n else None
    return best["k"], fitted, scores


def stability(data: RowSource, k: int, seed: int) -> float:
    """Mean pairwise ARI of the fits of ``k`` with seeds seed .. seed + STABILITY_SEEDS - 1,
    on a uniform sample of STABILITY_ROWS users: 1.0 means every seed finds the same
    segments. An estimate for the report, at a small fraction of the fit's cost."""
    n = data.n_samples
    rows = np.arange(n)
    if n > STABILITY_ROWS:
        rng = np.random.default_rng([seed, 7])
        rows = np.sort(rng.choice(n, size=STABILITY_ROWS, replace=False))
    sample = np.ascontiguousarray(data.take(rows))
    labels = [_kmeans(k, seed + i).fit(sample).labels_ for i in range(STABILITY_SEEDS)]
    pairs = [
        adjusted_rand_score(labels[i], labels[j])
        for i in range(len(labels))
        for j in range(i + 1, len(labels))
    ]
    return float(np.mean(pairs))


def why_k(scores: pl.DataFrame, k: int) -> str:
    """In words: how k was chosen (for the report and the command line)."""
    if scores.is_empty():
        return f"k = {k} was given"
    ranked = scores.sort("silhouette", descending=True)
    best = ranked.row(0, named=True)
    runner = ranked.row(1, named=True) if ranked.height > 1 else None
    text = (
        f"k = {k}: the best silhouette ({best['silhouette']:.3f}) of k = "
        f"{min(scores['k'].to_list())}..{max(scores['k'].to_list())} on a fixed sample of users"
    )
    if runner is not None:
        text += f"; next best k = {int(runner['k'])} ({runner['silhouette']:.3f})"
    return text


def fit_segments(
    data: RowSource,
    k: int | Literal["auto"],
    seed: int,
    labels_at: LabelsAt = _labels_in_memory,
) -> tuple[MiniBatchKMeans, Any, pl.DataFrame]:
    """The K-Means of the segments (k chosen by ``choose_k`` when "auto"): the fitted model,
    the labels handle its ``fit_rows`` returned, and the k scores (empty for a given k)."""
    scores, found = pl.DataFrame(), None
    if k == "auto":
        k, found, scores = choose_k(data, seed, labels_at=labels_at)
    if found is None:
        model = _kmeans(int(k), seed)
        found = model, model.fit_rows(data)
    return found[0], found[1], scores
