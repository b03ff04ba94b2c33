"""Numba kernels for mini-batch K-Means on sparse rows (CSR: data, indices, indptr).

The dense kernels' contract holds (see ``_kernels``): validated input, caller-allocated
buffers, no random numbers, per-chunk partial results reduced in chunk order, so results do
not depend on the number of threads. Centres are dense float64 arrays of shape
(n_clusters, n_features).

A sparse row's distance to a dense centre is |x|^2 - 2 x.c + |c|^2 (clipped at 0), as in
scikit-learn: it costs the row's non-zeros, not n_features. It loses precision when x and c
are far from the origin and close to each other, which sparse data rarely are.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from engine.kmeans._kernels import CHUNK_ROWS, FASTMATH, _search

STEP_BLOCK = 64  # batch rows per task of the mini-batch step (one scratch array each)


@nb.njit(cache=True, inline="always", fastmath=FASTMATH)
def _nearest(data, indices, indptr, i, centers_t, center_sq, dots):
    """Index of the nearest centre to row i and its squared distance (float64).

    ``centers_t`` is the centres transposed, shape (n_features, n_clusters): a non-zero's
    products with every centre read one contiguous row, not k scattered columns.
    ``dots``: scratch of shape (n_clusters,).
    """
    row_sq = 0.0
    dots[:] = 0.0
    for p in range(indptr[i], indptr[i + 1]):
        x = np.float64(data[p])
        row_sq += x * x
        column = centers_t[indices[p]]
        for c in range(dots.shape[0]):
            dots[c] += x * column[c]
    best = 0
    best_d = np.inf
    for c in range(dots.shape[0]):
        d = max(row_sq - 2.0 * dots[c] + center_sq[c], 0.0)
        if d < best_d:
            best_d = d
            best = c
    return best, best_d


@nb.njit(cache=True, fastmath=FASTMATH)
def _squared_norms(centers):
    out = np.empty(centers.shape[0])
    for c in range(centers.shape[0]):
        total = 0.0
        for j in range(centers.shape[1]):
            total += centers[c, j] * centers[c, j]
        out[c] = total
    return out


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def assign_chunks(data, indices, indptr, centers, weights, labels, chunk_inertia, distances):
    """Labels and per-chunk inertia of CSR rows.

    Args:
        data, indices, indptr: IN the CSR matrix of shape (n_samples, n_features).
        centers: IN float64 array of shape (n_clusters, n_features).
        weights: IN float64 array of shape (n_samples,), or (1,) for one shared weight.
        labels: OUT int32 array of shape (n_samples,).
        chunk_inertia: OUT float64 array of shape (n_chunks,).
        distances: OUT float64 array of shape (n_samples,) (each row's squared distance to
            its centre), or of shape (0,) to skip it.
    """
    n = indptr.shape[0] - 1
    center_sq = _squared_norms(centers)
    centers_t = np.ascontiguousarray(centers.T)
    shared_weight = weights.shape[0] == 1
    keep = distances.shape[0] > 0
    for chunk in nb.prange((n + CHUNK_ROWS - 1) // CHUNK_ROWS):
        inertia = 0.0
        dots = np.empty(centers.shape[0])
        for i in range(chunk * CHUNK_ROWS, min((chunk + 1) * CHUNK_ROWS, n)):
            best, best_d = _nearest(data, indices, indptr, i, centers_t, center_sq, dots)
            labels[i] = best
            inertia += (weights[0] if shared_weight else weights[i]) * best_d
            if keep:
                distances[i] = best_d
        chunk_inertia[chunk] = inertia


@nb.njit(cache=True)
def weighted_sums(data, indices, indptr, labels, weights, sums, seen):
    """Per-centre weighted sums of CSR rows, serially in row order (deterministic; O(nnz)).

    Args:
        data, indices, indptr: IN the CSR matrix.
        labels: IN int32 array of shape (n_samples,).
        weights: IN float64 array of shape (n_samples,), or (1,).
        sums: OUT float64 array of shape (n_clusters, n_features), zeroed here.
        seen: OUT float64 array of shape (n_clusters,), zeroed here.
    """
    sums[:, :] = 0.0
    seen[:] = 0.0
    shared_weight = weights.shape[0] == 1
    for i in range(indptr.shape[0] - 1):
        c = labels[i]
        w = weights[0] if shared_weight else weights[i]
        seen[c] += w
        for p in range(indptr[i], indptr[i + 1]):
            sums[c, indices[p]] += w * data[p]


@nb.njit(cache=True, parallel=True, fastmath=FASTMATH)
def minibatch_step(
    data, indices, indptr, batch, batch_weights, centers64, weight_sums, batch_labels
):
    """One mini-batch step (``_kernels.minibatch_step``'s rule), reading the batch's rows in
    place: a CSR row is a slice, so there is nothing to gain from gathering them first.

    Args:
        data, indices, indptr: IN the CSR matrix of shape (n_samples, n_features).
        batch: IN int64 array of shape (batch_size,), row indices.
        batch_weights: IN float64 array of shape (batch_size,).
        centers64: INOUT float64 array of shape (n_clusters, n_features).
        weight_sums: INOUT float64 array of shape (n_clusters,).
        batch_labels: OUT int32 array of shape (batch_size,).

    Returns:
        The batch inertia on the centres before the update (float64).
    """
    rows = batch.shape[0]
    center_sq = _squared_norms(centers64)
    centers_t = np.ascontiguousarray(centers64.T)
    dist = np.empty(rows)
    for block in nb.prange((rows + STEP_BLOCK - 1) // STEP_BLOCK):
        dots = np.empty(centers64.shape[0])
        for b in range(block * STEP_BLOCK, min((block + 1) * STEP_BLOCK, rows)):
            batch_labels[b], dist[b] = _nearest(
                data, indices, indptr, batch[b], centers_t, center_sq, dots
            )
    k = centers64.shape[0]
    counts = np.zeros(k)
    inertia = 0.0
    for b in range(rows):  # serial, in batch order: deterministic
        counts[batch_labels[b]] += batch_weights[b]
        inertia += batch_weights[b] * dist[b]
    for c in range(k):  # scale the centres that move, add their rows, divide
        if counts[c] > 0:
            for j in range(centers64.shape[1]):
                centers64[c, j] *= weight_sums[c]
    for b in range(rows):
        c, i = batch_labels[b], batch[b]
        for p in range(indptr[i], indptr[i + 1]):
            centers64[c, indices[p]] += batch_weights[b] * data[p]
    for c in range(k):
        if counts[c] > 0:
            weight_sums[c] += counts[c]
            for j in range(centers64.shape[1]):
                centers64[c, j] /= weight_sums[c]
    return inertia


@nb.njit(cache=True, fastmath=FASTMATH)
def _row_distances(data, indices, indptr, row_sq, dense_row, candidate, out):
    """Squared distance of every CSR row to row ``candidate`` (``dense_row``: scratch of
    n_features zeros, restored on return)."""
    for p in range(indptr[candidate], indptr[candidate + 1]):
        dense_row[indices[p]] = data[p]
    for i in range(indptr.shape[0] - 1):
        dot = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            dot += np.float64(data[p]) * dense_row[indices[p]]
        out[i] = max(row_sq[i] - 2.0 * dot + row_sq[candidate], 0.0)
    for p in range(indptr[candidate], indptr[candidate + 1]):
        dense_row[indices[p]] = 0.0


@nb.njit(cache=True, fastmath=FASTMATH)
def kmeans_plusplus(data, indices, indptr, n_features, weights, first, uniforms, chosen):
    """``_kernels.kmeans_plusplus`` on CSR rows: same draws, same choices.

    Args:
        data, indices, indptr: IN the seeding sample, a CSR matrix.
        n_features: number of columns.
        weights: IN float64 array of shape (n_samples,).
        first: index of the first centre.
        uniforms: IN float64 array of shape (n_clusters - 1, n_candidates), in [0, 1).
        chosen: OUT int64 array of shape (n_clusters,): the rows that become the centres.
    """
    n = indptr.shape[0] - 1
    row_sq = np.zeros(n)
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            row_sq[i] += np.float64(data[p]) * data[p]
    dense_row = np.zeros(n_features)
    closest, trial, best_closest = np.empty(n), np.empty(n), np.empty(n)
    cdf = np.empty(n)
    weight_cdf = np.cumsum(weights) / weights.sum()
    chosen[0] = first
    _row_distances(data, indices, indptr, row_sq, dense_row, first, closest)
    for c in range(1, chosen.shape[0]):
        total = 0.0
        for i in range(n):
            total += weights[i] * closest[i]
            cdf[i] = total
        best_potential = np.inf
        for u in uniforms[c - 1]:
            if total > 0:
                candidate = _search(cdf, u * total, False)
            else:  # fewer distinct points than centres: draw by weight alone
                candidate = _search(weight_cdf, u, True)
            candidate = min(candidate, n - 1)
            _row_distances(data, indices, indptr, row_sq, dense_row, candidate, trial)
            potential = 0.0
            for i in range(n):
                trial[i] = min(closest[i], trial[i])
                potential += weights[i] * trial[i]
            if potential < best_potential:
                best_potential = potential
                chosen[c] = candidate
                trial, best_closest = best_closest, trial
        closest, best_closest = best_closest, closest


KERNELS = (assign_chunks, weighted_sums, minibatch_step, kmeans_plusplus)
