"""Numba kernels for mini-batch K-Means. The only module of ecomscale that imports numba.

Kernels assume validated input: C-contiguous 2-D ``X`` (float32 or float64), centres in the
same dtype as X, float64 weights and accumulators. They write into caller-allocated buffers
(marked OUT / INOUT) and draw no random numbers. Work is split into fixed chunks of rows, and
per-chunk partial results are reduced in chunk order, so results do not depend on the number
of threads.

Distances are computed as sum((x - c)^2), never as |x|^2 - 2 x.c + |c|^2, so a large constant
offset in the features does not cancel precision away.
"""

from __future__ import annotations

import numba as nb
import numpy as np

CHUNK_ROWS = 8192
# Reassociation lets LLVM vectorise the distance sums; no nnan/ninf, so inf/NaN stay defined.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@nb.njit(cache=True, inline="always", fastmath=FASTMATH)
def _nearest(X, i, centers):
    """Index of the nearest centre to row i and its squared distance (float64)."""
    best = 0
    best_d = np.inf
    zero = X[i, 0] - X[i, 0]  # 0 in X's dtype: the inner sum stays in X's precision
    for c in range(centers.shape[0]):
        d = zero
        for j in range(X.shape[1]):
            t = X[i, j] - centers[c, j]
            d += t * t
        if d < best_d:
            best_d = d
            best = c
    return best, np.float64(best_d)


@nb.njit(cache=True, inline="always", fastmath=FASTMATH)
def _nearest8(X, i, centers, best, best_d):
    """``_nearest`` for the 8 rows i..i+7 at once: each centre coordinate is loaded once
    for 8 rows, and the 8 independent sums keep the FMA units busy (1.2-2x faster than
    row by row). Writes best[0:8] (int32) and best_d[0:8] (float64).

    Written out row by row on purpose: numba keeps scalars in registers, while a loop over
    a small array would go through memory (tried, and slower on the benchmark blobs).
    """
    zero = X[i, 0] - X[i, 0]
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = np.inf
    l0 = l1 = l2 = l3 = l4 = l5 = l6 = l7 = 0
    for c in range(centers.shape[0]):
        d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = zero
        for j in range(X.shape[1]):
            cj = centers[c, j]
            t0 = X[i, j] - cj
            t1 = X[i + 1, j] - cj
            t2 = X[i + 2, j] - cj
            t3 = X[i + 3, j] - cj
            t4 = X[i + 4, j] - cj
            t5 = X[i + 5, j] - cj
            t6 = X[i + 6, j] - cj
            t7 = X[i + 7, j] - cj
            d0 += t0 * t0
            d1 += t1 * t1
            d2 += t2 * t2
            d3 += t3 * t3
            d4 += t4 * t4
            d5 += t5 * t5
            d6 += t6 * t6
            d7 += t7 * t7
        if d0 < b0:
            b0, l0 = d0, c
        if d1 < b1:
            b1, l1 = d1, c
        if d2 < b2:
            b2, l2 = d2, c
        if d3 < b3:
            b3, l3 = d3, c
        if d4 < b4:
            b4, l4 = d4, c
        if d5 < b5:
            b5, l5 = d5, c
        if d6 < b6:
            b6, l6 = d6, c
        if d7 < b7:
            b7, l7 = d7, c
    best[0], best[1], best[2], best[3] = l0, l1, l2, l3
    best[4], best[5], best[6], best[7] = l4, l5, l6, l7
    best_d[0], best_d[1], best_d[2], best_d[3] = b0, b1, b2, b3
    best_d[4], best_d[5], best_d[6], best_d[7] = b4, b5, b6, b7


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def assign_chunks(X, centers, weights, labels, chunk_inertia, chunk_sums, chunk_weight):
    """Fused pass: labels, inertia and (optionally) per-centre weighted sums, per chunk.

    Args:
        X: IN array of shape (n_samples, n_features).
        centers: IN array of shape (n_clusters, n_features), X's dtype.
        weights: IN float64 array of shape (n_samples,), or of shape (1,) for one weight
            shared by every row (no n-sized array for unweighted fits).
        labels: OUT int32 array of shape (n_samples,).
        chunk_inertia: OUT float64 array of shape (n_chunks,).
        chunk_sums: OUT float64 array of shape (n_chunks, n_clusters, n_features), or of
            shape (0, 0, 0) to skip the sums.
        chunk_weight: OUT float64 array of shape (n_chunks, n_clusters) (ignored when
            chunk_sums is empty).
    """
    n = X.shape[0]
    n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    accumulate = chunk_sums.shape[0] > 0
    shared_weight = weights.shape[0] == 1
    for chunk in nb.prange(n_chunks):
        start = chunk * CHUNK_ROWS
        stop = min(start + CHUNK_ROWS, n)
        inertia = 0.0
        if accumulate:
            chunk_sums[chunk, :, :] = 0.0
            chunk_weight[chunk, :] = 0.0
        # Rows go 8 at a time through one call of _nearest8; a chunk's last rows are padded
        # to 8, so every row's distance comes from the same arithmetic wherever it sits
        # (a Dask partition starts its chunks elsewhere, and must agree to the last bit).
        block_labels = np.empty(8, dtype=np.int32)
        block_d = np.empty(8)
        tail = np.zeros((8, X.shape[1]), dtype=X.dtype)
        for block in range(start, stop, 8):
            rows = min(8, stop - block)
            source, row = X, block
            if rows < 8:
                for r in range(rows):  # (a slice assignment here tripled the compile time)
                    for j in range(X.shape[1]):
                        tail[r, j] = X[block + r, j]
                source, row = tail, 0
            _nearest8(source, row, centers, block_labels, block_d)
            for r in range(rows):
                i = block + r
                best, best_d = block_labels[r], block_d[r]
                labels[i] = best
                w = weights[0] if shared_weight else weights[i]
                inertia += w * best_d
                if accumulate:
                    chunk_weight[chunk, best] += w
                    for j in range(X.shape[1]):
                        chunk_sums[chunk, best, j] += w * np.float64(X[i, j])
        chunk_inertia[chunk] = inertia


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def minibatch_step(X, batch, batch_weights, centers, centers64, weight_sums, batch_labels):
    """One mini-batch step with per-centre learning rates 1 / (weight seen) (Sculley 2010).

    Args:
        X: IN array of shape (n_samples, n_features).
        batch: IN int64 array of shape (batch_size,), row indices.
        batch_weights: IN float64 array of shape (batch_size,).
        centers: INOUT array of shape (n_clusters, n_features), X's dtype (kept in sync).
        centers64: INOUT float64 array of shape (n_clusters, n_features), the true centres.
        weight_sums: INOUT float64 array of shape (n_clusters,), weight seen per centre.
        batch_labels: OUT int32 array of shape (batch_size,).

    Returns:
        The batch inertia on the centres before the update (float64).
    """
    dist = np.empty(batch.shape[0])
    for b in nb.prange(batch.shape[0]):
        batch_labels[b], dist[b] = _nearest(X, batch[b], centers)
    k, d = centers64.shape
    sums = np.zeros((k, d))
    counts = np.zeros(k)
    inertia = 0.0
    for b in range(batch.shape[0]):  # serial, in batch order: deterministic
        c = batch_labels[b]
        w = batch_weights[b]
        counts[c] += w
        inertia += w * dist[b]
        for j in range(d):
            sums[c, j] += w * np.float64(X[batch[b], j])
    for c in range(k):
        if counts[c] > 0:
            total = weight_sums[c] + counts[c]
            for j in range(d):
                centers64[c, j] = (centers64[c, j] * weight_sums[c] + sums[c, j]) / total
                centers[c, j] = centers64[c, j]
            weight_sums[c] = total
    return inertia


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def min_sq_distances(X, centers, out):
    """Squared distance of every row to its nearest centre.

    Args:
        X: IN array of shape (n_samples, n_features).
        centers: IN array of shape (n_clusters, n_features), X's dtype.
        out: OUT float64 array of shape (n_samples,).
    """
    for i in nb.prange(X.shape[0]):
        _, best_d = _nearest(X, i, centers)
        out[i] = best_d


@nb.njit(cache=True, inline="always")
def _search(cdf, value, right):
    """``np.searchsorted(cdf, value, side="right" if right else "left")``."""
    lo, hi = 0, cdf.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if cdf[mid] < value or (right and cdf[mid] == value):
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, fastmath=FASTMATH)
def kmeans_plusplus(X, weights, first, uniforms, centers):
    """Greedy k-means++ (Arthur & Vassilvitskii) with its random numbers given: for each
    new centre, candidates are drawn with probability proportional to weight x squared
    distance to the nearest centre so far, and the one that lowers that potential most is
    kept.

    Args:
        X: IN float64 array of shape (n_samples, n_features) (the seeding sample).
        weights: IN float64 array of shape (n_samples,).
        first: index of the first centre (the caller draws it by weight).
        uniforms: IN float64 array of shape (n_clusters - 1, n_candidates), in [0, 1).
        centers: OUT float64 array of shape (n_clusters, n_features).
    """
    n, d = X.shape
    closest, trial, best_closest = np.empty(n), np.empty(n), np.empty(n)
    cdf = np.empty(n)
    weight_cdf = np.cumsum(weights) / weights.sum()  # the fallback: draw by weight alone
    centers[0] = X[first]
    for i in range(n):
        dist = 0.0
        for j in range(d):
            t = X[i, j] - X[first, j]
            dist += t * t
        closest[i] = dist
    for c in range(1, centers.shape[0]):
        total = 0.0
        for i in range(n):
            total += weights[i] * closest[i]
            cdf[i] = total
        best_potential = np.inf
        for u in uniforms[c - 1]:
            if total > 0:
                candidate = _search(cdf, u * total, False)
            else:  # fewer distinct points than centres: duplicates are unavoidable
                candidate = _search(weight_cdf, u, True)
            candidate = min(candidate, n - 1)
            potential = 0.0
            for i in range(n):
                dist = 0.0
                for j in range(d):
                    t = X[i, j] - X[candidate, j]
                    dist += t * t
                trial[i] = min(closest[i], dist)
                potential += weights[i] * trial[i]
            if potential < best_potential:
                best_potential = potential
                centers[c] = X[candidate]
                trial, best_closest = best_closest, trial
        closest, best_closest = best_closest, closest


KERNELS = (assign_chunks, minibatch_step, min_sq_distances, kmeans_plusplus)
