"""engine.MiniBatchKMeans: a scikit-learn compatible, numba-accelerated mini-batch K-Means.

fit = the best of a few k-means++ seedings of a subsample (each refined by Lloyd on it) ->
mini-batch steps (Sculley per-centre learning rates) on a sample budget that does not grow
with n (and stops after one epoch on small n, where full passes are cheaper) -> full Lloyd
passes to polish, until the centres or the inertia stop moving; the
last pass's labels and exact inertia are the result. All randomness is drawn here, in
Python, from ``random_state``; kernels are deterministic and thread-count independent.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _assert_all_finite,
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from engine.kmeans import _kernels as K
from engine.kmeans.rows import (
    InMemoryRows,
    RowSource,
    assign,
    kmeans_plusplus,
    lloyd_passes,
    map_runs,
)

MIN_STEPS = 10
INIT_CANDIDATES = 3  # k-means++ seedings tried on the init sample, the best one kept
INIT_LLOYD_PASSES = 5  # Lloyd passes over the init sample refining each seeding
# Polishing stops when a full pass lowers the inertia by less than this fraction.
POLISH_RTOL = 1e-5
STEPS_PER_FETCH = 10  # first mini-batches drawn ahead (one fetch from a distributed source)


class MiniBatchKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """Mini-batch K-Means with numba kernels, scikit-learn compatible.

    Parameters:
        n_clusters: number of clusters.
        init: "k-means++" or an array of shape (n_clusters, n_features).
        batch_size: rows per mini-batch step.
        max_steps: mini-batch step budget (does not grow with n_samples); at most one epoch,
            ceil(n_samples / batch_size) steps: past that a Lloyd pass over all rows costs
            less than the steps it replaces (and escapes poor optima more often).
        max_iter: at most this many full Lloyd polish passes after the mini-batch phase
            (0 disables polishing).
        tol: stop polishing when the squared centre shift, relative to the data variance,
            falls below tol (polishing also stops when a pass lowers the inertia by less
            than POLISH_RTOL, 1e-5, of itself).
        init_size: rows sampled for k-means++ (default min(n, max(3 * batch_size, 10 k)));
            INIT_CANDIDATES seedings of them, each refined by INIT_LLOYD_PASSES Lloyd passes
            on the sample, and the one with the lowest sample inertia starts the fit.
        reassignment_ratio: centres that have seen less than this fraction of the busiest
            centre's weight are moved to random batch points during the mini-batch phase.
        n_init: independent initialisations; the run with the lowest inertia is kept.
        random_state: seed or RandomState.

    Attributes:
        cluster_centers_: array of shape (n_clusters, n_features), X's dtype.
        labels_: array of shape (n_samples,).
        inertia_: exact weighted sum of squared distances, accumulated in float64.
        n_steps_: mini-batch steps taken.
        n_iter_: full passes over the data.
        n_features_in_: number of features seen at fit.
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++"}), "array-like"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_steps": [Interval(Integral, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init_size": [Interval(Integral, 1, None, closed="left"), None],
        "reassignment_ratio": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | np.ndarray = "k-means++",
        batch_size: int = 4096,
        max_steps: int = 100,
        max_iter: int = 30,
        tol: float = 1e-4,
        init_size: int | None = None,
        reassignment_ratio: float = 0.01,
        n_init: int = 1,
        random_state: Any = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.max_iter = max_iter
        self.tol = tol
        self.init_size = init_size
        self.reassignment_ratio = reassignment_ratio
        self.n_init = n_init
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _check_X(self, X: Any, reset: bool, finite: bool = True) -> np.ndarray:
        X = validate_data(
            self,
            X,
            accept_sparse=False,
            dtype=[np.float64, np.float32],
            order="C",
            reset=reset,
            ensure_all_finite=finite,
        )
        return np.ascontiguousarray(X)

    def _initial_centers(
        self, data: RowSource, weights: np.ndarray, rng: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Starting centres (float64) and the uniform sample of rows they came from (the
        caller estimates the data variance on it)."""
        k = self.n_clusters
        n = data.n_samples
        if not isinstance(self.init, str):
            init = np.asarray(self.init, dtype=np.float64)
            n_features = data.take(np.zeros(1, dtype=np.int64)).shape[1]
            if init.shape != (k, n_features):
                raise ValueError(
                    f"init has shape {init.shape}; expected ({k}, {n_features}) (n_clusters, "
                    "n_features)"
                )
            return init.copy(), data.take(rng.randint(0, n, size=min(n, 16_384)))
        size = self.init_size or max(3 * self.batch_size, 10 * k)
        size = min(n, max(size, k))
        if size >= n:
            rows = np.arange(n)
        elif n > 8 * size:  # O(size) draw; a repeated row is harmless for k-means++
            rows = np.unique(rng.randint(0, n, size=size))
        else:
            rows = np.sort(rng.choice(n, size=size, replace=False))
        row_weights = weights[rows] if weights.size == n else np.ones(rows.size)
        sample = data.take(rows)
        # Best of a few k-means++ seedings, each refined by Lloyd on the sample: a seeding
        # that puts two centres in one cluster is a local optimum no later phase leaves.
        best, best_inertia = None, np.inf
        for _ in range(INIT_CANDIDATES):
            centers = kmeans_plusplus(sample, k, row_weights, rng)
            centers, inertia = lloyd_passes(sample, centers, row_weights, INIT_LLOYD_PASSES)
            if best is None or inertia < best_inertia:  # (a NaN inertia: see fit)
                best, best_inertia = centers, inertia
        assert best is not None
        return best, sample

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the clustering.

        Args:
            X: array-like of shape (n_samples, n_features); float32 is kept as float32.
            y: ignored.
            sample_weight: array-like of shape (n_samples,), optional.

        Returns:
            self
        """
        self._validate_params()
        # NaN or inf is found by the fit's own passes, not by a pass of its own: such a value
        # makes the exact inertia non-finite; only then is X searched, for sklearn's message.
        X = self._check_X(X, reset=True, finite=False)
        # Unweighted fits share one weight: no n-sized weight array (extra memory).
        weights = (
            np.ones(1)
            if sample_weight is None
            else _check_sample_weight(sample_weight, X, dtype=np.float64)
        )
        n, d = X.shape
        k = self.n_clusters
        if n < k:
            raise ValueError(f"n_samples={n} should be >= n_clusters={k}.")
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf input: raised below
            self._fit_source(InMemoryRows(X, weights), weights)
        if not np.isfinite(self.inertia_):
            _assert_all_finite(X, input_name="X", estimator_name=type(self).__name__)
        return self

    def fit_rows(self, data: RowSource) -> Any:
        """Fit on rows that live elsewhere (e.g. on Dask workers), unweighted.

        Gives the same centres as ``fit`` on the same rows in the same order. Sets every
        fitted attribute except ``labels_``, and returns the source's handle to the labels.
        """
        self._validate_params()
        if data.n_samples < self.n_clusters:
            raise ValueError(
                f"n_samples={data.n_samples} should be >= n_clusters={self.n_clusters}."
            )
        labels = self._fit_source(data, np.ones(1), keep_labels=False)
        return labels

    def _fit_source(self, data: RowSource, weights: np.ndarray, keep_labels: bool = True) -> Any:
        rng = check_random_state(self.random_state)
        # One seed per initialisation: runs are independent, so a distributed source can
        # run them at once; the best (lowest inertia, first on ties) wins either way.
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_init)
        runs = map_runs(
            data, lambda seed: self._fit_once(data, weights, np.random.RandomState(seed)), seeds
        )
        best = min(runs, key=lambda run: run[2])
        (
            self.cluster_centers_,
            labels,
            self.inertia_,
            self.n_steps_,
            self.n_iter_,
            self._weight_sums,
        ) = best
        if keep_labels:
            self.labels_ = labels
        self.n_features_in_ = self.cluster_centers_.shape[1]
        return labels

    def _fit_once(
        self, data: RowSource, weights: np.ndarray, rng: np.random.RandomState
    ) -> tuple[np.ndarray, Any, float, int, int, np.ndarray]:
        """One initialisation: k-means++ -> mini-batch steps -> Lloyd polish -> labels."""
        n = data.n_samples
        k = self.n_clusters
        centers64, sample = self._initial_centers(data, weights, rng)
        centers = centers64.astype(data.dtype)
        # Tolerance scale: the data variance, estimated on the (uniform) k-means++ sample.
        tol = self.tol * float(np.mean(np.var(sample, axis=0, dtype=np.float64)))

        # Mini-batch phase: uniform sampling (weighted rows are sampled by weight). Batch
        # indices come from their own stream, drawn STEPS_PER_FETCH steps ahead, so a
        # distributed source can fetch those rows in one round trip.
        batch_rng = np.random.RandomState(rng.randint(2**31 - 1))
        cdf = None if weights.size == 1 else np.cumsum(weights)

        def draw() -> np.ndarray:
            if cdf is None:
                return batch_rng.randint(0, n, size=batch).astype(np.int64)
            idx = np.searchsorted(cdf, batch_rng.uniform(size=batch) * cdf[-1])
            return np.minimum(idx, n - 1).astype(np.int64)

        batch = min(self.batch_size, n)
        batch_weights = np.ones(batch)
        weight_sums = np.zeros(k)
        batch_labels = np.empty(batch, dtype=np.int32)
        steps = 0
        smoothed_shift = np.inf
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        max_steps = min(self.max_steps, -(-n // batch))  # at most one epoch (see max_steps)
        for steps in range(1, max_steps + 1):
            if not pending:  # remote rows: 10, 20, 40... steps per fetch; local: one step
                ahead = max(STEPS_PER_FETCH, steps - 1) if data.concurrent else 1
                ahead = min(ahead, max_steps - steps + 1)
                pending = data.batches([draw() for _ in range(ahead)])
            X, idx = pending.pop(0)
            before = centers64.copy()
            K.minibatch_step(X, idx, batch_weights, centers, centers64, weight_sums, batch_labels)
            if steps % 10 == 0 and self.reassignment_ratio > 0:
                self._reassign_starved(X, idx, centers, centers64, weight_sums, rng)
            # Early stop once the centres settle (an EWA of the per-step shift).
            shift = float(((centers64 - before) ** 2).sum())
            smoothed_shift = shift if steps == 1 else 0.8 * smoothed_shift + 0.2 * shift
            if steps >= MIN_STEPS and smoothed_shift <= tol:
                break
        steps = steps if self.max_steps else 0

        # Lloyd polish: full passes until the centres stop moving. Each pass gives labels and
        # exact inertia for the centres it used; when the update that follows moves them by
        # less than tol, that consistent triple is the result (no extra labelling pass).
        passes = 0
        inertia = np.inf
        labels = None  # one buffer (or handle) per run, reused by every pass
        for _ in range(self.max_iter):
            previous = inertia
            inertia, sums, seen, labels = data.full_pass(centers, True, labels)
            passes += 1
            if not np.isfinite(inertia):
                break  # NaN or inf in X (fit raises) or distances beyond the float range
            if previous - inertia <= POLISH_RTOL * inertia:
                break  # a Lloyd pass that no longer lowers the inertia: a flat basin
            new = centers64.copy()
            filled = seen > 0
            new[filled] = sums[filled] / seen[filled, None]
            if not filled.all():  # an empty centre restarts at the worst-served point
                new[~filled] = data.farthest(centers, int((~filled).sum()))
            shift = float(((new - centers64) ** 2).sum())
            if shift <= tol and filled.all():
                break
            centers64 = new
            centers = centers64.astype(data.dtype)
        else:
            inertia, _, _, labels = data.full_pass(centers, False, labels)
            passes += 1
        return centers, labels, inertia, steps, passes, weight_sums

    def _reassign_starved(
        self,
        X: np.ndarray,
        idx: np.ndarray,
        centers: np.ndarray,
        centers64: np.ndarray,
        weight_sums: np.ndarray,
        rng: np.random.RandomState,
    ) -> None:
        starved = weight_sums < self.reassignment_ratio * weight_sums.max()
        if starved.any():
            picks = idx[rng.choice(idx.size, size=int(starved.sum()), replace=False)]
            centers64[starved] = X[picks]
            centers[starved] = X[picks]
            weight_sums[starved] = weight_sums[~starved].min() if (~starved).any() else 0.0

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Update the centres with one mini-batch step over ``X``.

        Args:
            X: array-like of shape (n_samples, n_features).
            y: ignored.
            sample_weight: array-like of shape (n_samples,), optional.

        Returns:
            self
        """
        first = not hasattr(self, "cluster_centers_")
        if first:
            self._validate_params()
        X = self._check_X(X, reset=first)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if first:
            if X.shape[0] < self.n_clusters:
                raise ValueError(
                    f"n_samples={X.shape[0]} should be >= n_clusters={self.n_clusters}."
                )
            self._rng = check_random_state(self.random_state)
            self._centers64, _ = self._initial_centers(InMemoryRows(X, weights), weights, self._rng)
            self._weight_sums = np.zeros(self.n_clusters)
            self.n_steps_ = 0
            self.n_iter_ = 0
        else:
            self._centers64 = self.cluster_centers_.astype(np.float64)
        centers = self._centers64.astype(X.dtype)
        batch_labels = np.empty(X.shape[0], dtype=np.int32)
        rows = np.arange(X.shape[0], dtype=np.int64)
        K.minibatch_step(
            X, rows, weights, centers, self._centers64, self._weight_sums, batch_labels
        )
        self.cluster_centers_ = self._centers64.astype(X.dtype)
        self.labels_, self.inertia_, _, _ = assign(
            X, self.cluster_centers_, weights, with_sums=False
        )
        self.n_steps_ += 1
        return self

    def _centers_for(self, X: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.cluster_centers_, dtype=X.dtype)

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each row of X, array of shape (n_samples,)."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        labels, _, _, _ = assign(X, self._centers_for(X), np.ones(1), with_sums=False)
        return labels

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distances to every centre, array of shape (n_samples, n_clusters)."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        centers = self.cluster_centers_.astype(np.float64)
        out = np.empty((X.shape[0], self.n_clusters), dtype=X.dtype)
        step = 65_536
        for start in range(0, X.shape[0], step):
            block = X[start : start + step].astype(np.float64)
            sq = ((block[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
            out[start : start + step] = np.sqrt(sq)
        return out

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the inertia of X on the fitted centres."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        _, inertia, _, _ = assign(X, self._centers_for(X), weights, with_sums=False)
        return -inertia
