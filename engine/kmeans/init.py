"""Initial centres for MiniBatchKMeans, by scikit-learn's rules and messages: "k-means++",
"random" rows, an array, or a callable, drawn on a sample of ``init_size`` rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

from engine.kmeans.rows import RowSource, kmeans_plusplus, lloyd_passes


def is_array_init(init: Any) -> bool:
    """Whether ``init`` gives the centres themselves (not a method name or a callable)."""
    return not isinstance(init, str) and not callable(init)


def check_center_shape(centers: np.ndarray, n_clusters: int, n_features: int) -> None:
    """scikit-learn's errors for initial centres of the wrong shape."""
    if centers.shape[0] != n_clusters:
        raise ValueError(
            f"The shape of the initial centers {centers.shape} does not match the number of "
            f"clusters {n_clusters}."
        )
    if centers.shape[1] != n_features:
        raise ValueError(
            f"The shape of the initial centers {centers.shape} does not match the number of "
            f"features of the data {n_features}."
        )


def initial_centers(
    init: Any,
    data: RowSource,
    weights: np.ndarray,
    n_clusters: int,
    init_size: int,
    rng: np.random.RandomState,
    lloyd_iter: int = 0,
) -> np.ndarray:
    """One set of starting centres (float64, shape (n_clusters, n_features)).

    ``init`` is a validated array (used as given), "k-means++", "random" or a callable
    ``init(sample, n_clusters, random_state=rng)``. The last three see ``init_size`` rows
    drawn with replacement (all rows when init_size >= n_samples) and their weights: rows
    of zero weight are never chosen. ``lloyd_iter`` Lloyd passes over that sample then
    refine a "k-means++" or "random" start (an ecomscale extra; 0 = scikit-learn).
    """
    if is_array_init(init):
        return np.array(init, dtype=np.float64)
    n = data.n_samples
    rows = rng.randint(0, n, init_size) if init_size < n else np.arange(n)
    sample = data.take(rows)
    row_weights = weights[rows] if weights.size == n else np.ones(rows.size)
    if callable(init):
        centers = init(sample, n_clusters, random_state=rng)
        centers = check_array(centers, dtype=sample.dtype, copy=False, order="C")
        check_center_shape(centers, n_clusters, sample.shape[1])
        return np.array(centers, dtype=np.float64)
    if init == "k-means++":
        centers = kmeans_plusplus(sample, n_clusters, row_weights, rng)
    else:
        p = row_weights / row_weights.sum()
        seeds = rng.choice(rows.size, size=n_clusters, replace=False, p=p)
        chosen: Any = sample[seeds]
        centers = (chosen.toarray() if sp.issparse(chosen) else chosen).astype(np.float64)
    if lloyd_iter:
        centers, _ = lloyd_passes(sample, centers, row_weights, lloyd_iter)
    return centers
