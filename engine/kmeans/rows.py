"""Where K-Means rows live, and the passes over them: the fused labels/inertia/sums pass,
the mini-batch step, k-means++ seeding, and the RowSource protocol with its in-memory
implementation. Each pass takes dense rows or scipy CSR rows (its own kernels for each).

``MiniBatchKMeans`` drives these; the Dask backend (engine.distributed) implements RowSource
over rows held by workers, so one fit loop serves both.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import numpy as np
import scipy.sparse as sp

from engine.kmeans import _kernels as K
from engine.kmeans.csr import _kernels as S

T = TypeVar("T")


def _n_chunks(n: int) -> int:
    return (n + K.CHUNK_ROWS - 1) // K.CHUNK_ROWS


def assign_chunks(
    X: np.ndarray,
    centers: np.ndarray,
    weights: np.ndarray,
    with_sums: bool,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, and per chunk of CHUNK_ROWS rows: inertia (float64) and, if asked,
    per-centre weighted sums and weights (arrays of shape (n_chunks, ...)).

    ``labels`` (int32, shape (n_samples,)) is reused when given: the only n-sized buffer.
    """
    n, d = X.shape
    k = centers.shape[0]
    chunks = _n_chunks(n)
    labels = np.empty(n, dtype=np.int32) if labels is None else labels
    inertia = np.empty(chunks)
    sums = np.empty((chunks, k, d) if with_sums else (0, 0, 0))
    weight = np.empty((chunks, k) if with_sums else (0, 0))
    K.assign_chunks(X, centers, weights, labels, inertia, sums, weight)
    return labels, inertia, sums, weight


def assign(
    X: np.ndarray,
    centers: np.ndarray,
    weights: np.ndarray,
    with_sums: bool,
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Labels, exact inertia (float64) and, if asked, per-centre weighted sums and weights.
    Dense X takes centres in X's dtype; CSR X takes float64 centres (``center_dtype``)."""
    if sp.issparse(X):
        return _assign_csr(X, centers, weights, with_sums, labels)
    labels, inertia, sums, weight = assign_chunks(X, centers, weights, with_sums, labels)
    total = float(math.fsum(inertia))  # chunk order; thread-count independent
    if with_sums:
        return labels, total, sums.sum(axis=0), weight.sum(axis=0)
    return labels, total, sums, weight


def _assign_csr(
    X: Any, centers: np.ndarray, weights: np.ndarray, with_sums: bool, labels: Any
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int32) if labels is None else labels
    inertia = np.empty(_n_chunks(n))
    S.assign_chunks(X.data, X.indices, X.indptr, centers, weights, labels, inertia, np.empty(0))
    total = float(math.fsum(inertia))
    if not with_sums:
        return labels, total, np.empty((0, 0)), np.empty(0)
    sums, seen = np.empty(centers.shape), np.empty(centers.shape[0])
    S.weighted_sums(X.data, X.indices, X.indptr, labels, weights, sums, seen)
    return labels, total, sums, seen


def center_dtype(X: Any) -> np.dtype:
    """The dtype the passes take centres in: X's for dense rows, float64 for CSR rows."""
    return np.dtype(np.float64) if sp.issparse(X) else X.dtype


def minibatch_step(
    X: Any,
    idx: np.ndarray,
    batch_weights: np.ndarray,
    centers: np.ndarray,
    centers64: np.ndarray,
    weight_sums: np.ndarray,
    batch_labels: np.ndarray,
) -> float:
    """One mini-batch step over rows ``idx`` of X; updates centres (both copies) and weight
    sums in place; returns the batch inertia on the centres before the step."""
    if not sp.issparse(X):
        dense = (X, idx, batch_weights, centers, centers64, weight_sums, batch_labels)
        return float(K.minibatch_step(*dense))
    csr = (X.data, X.indices, X.indptr, idx, batch_weights, centers64, weight_sums, batch_labels)
    inertia = float(S.minibatch_step(*csr))
    centers[...] = centers64
    return inertia


def distances(X: Any, centers: np.ndarray) -> np.ndarray:
    """Euclidean distances of every row to every (float64) centre, array of shape
    (n_samples, n_clusters) in X's dtype; computed in float64, 65,536 rows at a time."""
    out = np.empty((X.shape[0], centers.shape[0]), dtype=X.dtype)
    step = 65_536
    for start in range(0, X.shape[0], step):
        block = X[start : start + step].astype(np.float64)
        if sp.issparse(X):  # |x|^2 - 2 x.c + |c|^2, as the sparse kernels
            row_sq = np.asarray(block.multiply(block).sum(axis=1)).reshape(-1, 1)
            sq = row_sq - 2.0 * (block @ centers.T) + (centers**2).sum(axis=1)[None, :]
            out[start : start + step] = np.sqrt(np.maximum(sq, 0.0))
        else:
            sq = ((block[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
            out[start : start + step] = np.sqrt(sq)
    return out


def lloyd_passes(
    X: np.ndarray, centers: np.ndarray, weights: np.ndarray, passes: int
) -> tuple[np.ndarray, float]:
    """Up to ``passes`` Lloyd passes over a small sample (float64 centres); returns them and
    the sample inertia of those centres. Stops early at a fixed point (an update that leaves
    the centres as they are), whose pass already gave their inertia."""
    centers32 = centers.astype(center_dtype(X))
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    for _ in range(passes):
        _, inertia, sums, seen = assign(X, centers32, weights, True)
        filled = seen > 0
        updated = centers.copy()
        updated[filled] = sums[filled] / seen[filled, None]
        if np.array_equal(updated, centers):
            return centers, inertia
        centers = updated
        centers32 = centers.astype(center_dtype(X))
    _, inertia, _, _ = assign(X, centers32, weights, False)
    return centers, inertia


def farthest_rows(X: Any, centers: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The squared distances and (dense) rows of the m rows farthest from their nearest
    centre (ties: lowest index first)."""
    dist = np.empty(X.shape[0])
    if sp.issparse(X):
        labels, inertia = np.empty(X.shape[0], dtype=np.int32), np.empty(_n_chunks(X.shape[0]))
        S.assign_chunks(X.data, X.indices, X.indptr, centers, np.ones(1), labels, inertia, dist)
    else:
        K.min_sq_distances(X, centers, dist)
    top = np.argsort(-dist, kind="stable")[:m]
    return dist[top], X[top].toarray() if sp.issparse(X) else X[top]


def kmeans_plusplus(X: Any, k: int, weights: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    """Greedy k-means++ (2 + log k candidates per centre) on a sample, float64 centres.

    Draws the first centre by weight, then (k - 1) x candidates uniforms; the numba kernel
    does the rest.
    """
    n = X.shape[0]
    candidates = 2 + int(np.log(k))
    first = rng.choice(n, p=weights / weights.sum())
    uniforms = rng.uniform(size=(k - 1, candidates))
    weights = weights.astype(np.float64)
    if sp.issparse(X):
        chosen = np.empty(k, dtype=np.int64)
        args = (X.data, X.indices, X.indptr, X.shape[1], weights, first, uniforms, chosen)
        S.kmeans_plusplus(*args)
        return X[chosen].toarray().astype(np.float64)
    centers = np.empty((k, X.shape[1]))
    K.kmeans_plusplus(X.astype(np.float64), weights, first, uniforms, centers)
    return centers


class RowSource(Protocol):
    """Where the rows of a fit live: in memory (``InMemoryRows``) or on Dask workers.

    Rows are addressed by their global index 0..n_samples-1; every method returns the same
    values whatever the backend, so a fit gives the same result on either.
    """

    n_samples: int
    dtype: np.dtype
    center_dtype: np.dtype  # the dtype the passes take centres in (``center_dtype``)
    concurrent: bool  # independent fits may run at once in driver threads (hides round trips)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Rows at these indices, in this order, array of shape (len(rows), n_features)."""
        ...

    def batches(self, indices: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each mini-batch's indices, an (X, idx) pair that ``minibatch_step`` reads."""
        ...

    def full_pass(
        self, centers: np.ndarray, with_sums: bool, labels: Any = None
    ) -> tuple[float, Any, Any, Any]:
        """Labels every row: exact inertia, per-centre sums of shape (n_clusters, n_features)
        and weights of shape (n_clusters,) if asked (else None), and a handle to the labels
        (``labels``, the handle of an earlier pass of the same run, may be reused)."""
        ...

    def farthest(self, centers: np.ndarray, m: int) -> np.ndarray:
        """The m rows farthest from their nearest centre (ties: lowest index first)."""
        ...


def map_runs(data: RowSource, run: Callable[[Any], T], args: Any) -> list[T]:
    """``[run(a) for a in args]``, in driver threads when ``data.concurrent``."""
    if not data.concurrent or len(args) < 2:
        return [run(a) for a in args]
    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(run, args))


class InMemoryRows:
    """A RowSource over an in-memory array (what ``fit`` uses)."""

    def __init__(self, X: Any, weights: np.ndarray) -> None:
        self.X, self.weights = X, weights
        self.n_samples, self.dtype = X.shape[0], X.dtype
        self.center_dtype = center_dtype(X)
        self.concurrent = False  # numba already uses every core for one fit

    def take(self, rows: np.ndarray) -> Any:
        if sp.issparse(self.X):
            return self.X[rows]
        # Performance note: np.take, not fancy indexing (X[rows]): it gathers random rows
        # faster (checked on the 1M-row benchmark matrix). Keep it.
        return np.take(self.X, rows, axis=0)

    def batches(self, indices: list[np.ndarray]) -> list[tuple[Any, np.ndarray]]:
        if sp.issparse(self.X):  # CSR rows are read in place (see the CSR step kernel)
            return [(self.X, idx) for idx in indices]
        # The step reads contiguous gathered rows: half the cost of reading them in place.
        return [(self.take(idx), np.arange(idx.size, dtype=np.int64)) for idx in indices]

    def full_pass(
        self, centers: np.ndarray, with_sums: bool, labels: Any = None
    ) -> tuple[float, Any, Any, Any]:
        labels, inertia, sums, seen = assign(self.X, centers, self.weights, with_sums, labels)
        return inertia, sums if with_sums else None, seen if with_sums else None, labels

    def farthest(self, centers: np.ndarray, m: int) -> np.ndarray:
        return farthest_rows(self.X, centers, m)[1]


def compiled_in_this_process() -> bool:
    """Whether any kernel was compiled here rather than loaded from numba's on-disk cache
    (the first run after an install or a change pays that, several seconds)."""
    kernels = K.KERNELS + S.KERNELS
    return any(sum(kernel.stats.cache_misses.values()) for kernel in kernels)
