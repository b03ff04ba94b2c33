"""engine.MiniBatchKMeans: scikit-learn 1.9's MiniBatchKMeans on numba kernels, a drop-in
(see the class). All randomness is drawn in Python from ``random_state``; kernels are
deterministic and thread-count independent."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _assert_all_finite,
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)

from engine.kmeans.init import check_center_shape, initial_centers, is_array_init
from engine.kmeans.minibatch import Plan, Reassignments, fit_once, reassign_small
from engine.kmeans.rows import (
    InMemoryRows,
    RowSource,
    assign,
    distances,
    map_runs,
    minibatch_step,
)

# ecomscale's own settings (the segments and the K-Means benchmark use them): a fixed budget
# of large mini-batches, at most one epoch, then Lloyd passes to polish. On large n this
# reaches Lloyd's inertia in a fraction of its time (benchmarks/results/ci.json).
FAST_SETTINGS: dict[str, Any] = {
    "batch_size": 4096,
    "max_iter": 1,
    "max_steps": 100,
    "tol": 1e-4,
    "n_init": 3,
    "init_lloyd_iter": 5,
    "polish_iter": 30,
}


def _assert_finite(X: Any) -> None:
    """scikit-learn's error for NaN or inf in X."""
    values = X.data if sp.issparse(X) else X
    _assert_all_finite(values, input_name="X", estimator_name="MiniBatchKMeans")


class MiniBatchKMeans(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """Mini-batch K-Means: scikit-learn 1.9's ``sklearn.cluster.MiniBatchKMeans``, whose
    documentation holds for every parameter, attribute and method; numba kernels, parallel
    and thread-count deterministic, for dense and sparse (CSR; CSC is converted) input.

    Parameters as scikit-learn's: n_clusters=8, init="k-means++" ("random", an array of
    shape (n_clusters, n_features) or a callable ``init(X, n_clusters, random_state)``),
    max_iter=100 (epochs), batch_size=1024, verbose=0, compute_labels=True,
    random_state=None, tol=0.0, max_no_improvement=10, init_size=None, n_init="auto",
    reassignment_ratio=0.01.

    ecomscale's extras (the defaults leave scikit-learn's behaviour unchanged):
        max_steps: at most this many mini-batch steps, whatever max_iter allows
            (None: no cap). A step budget that does not grow with n_samples.
        polish_iter: after the mini-batch phase, at most this many full Lloyd passes, until
            the squared centre shift is within tol (scaled as scikit-learn's) or a pass
            lowers the inertia by less than 1e-5 of itself. Counted in ``n_iter_``; the
            last pass gives the labels (0: none, one labelling pass as scikit-learn).
        init_lloyd_iter: Lloyd passes over its init_size sample that refine each
            "k-means++" or "random" start before the starts are compared.
        n_runs: independent fits (each with its own starts), the lowest inertia kept: the
            ``n_init`` of KMeans. They run at once on a distributed RowSource.
    ``FAST_SETTINGS`` combines them: ``MiniBatchKMeans(8, **FAST_SETTINGS)``.

    Attributes: cluster_centers_ (X's float dtype), labels_ (int32), inertia_, n_iter_,
    n_steps_, n_features_in_, feature_names_in_.

    Differences from scikit-learn (deliberate):
        - Random streams: the same random_state gives different (equally distributed)
          starts and batches. Batches by weight are drawn by binary search in the running
          sum of the weights, O(batch_size log n) per step where numpy's choice(p=) costs
          O(n), the main cost of scikit-learn's fit on large n.
        - tol is scaled by the mean feature variance of the validation sample (init_size
          rows), not of all of X: one pass over the data fewer.
        - Weight sums, centres during the fit and inertia accumulate in float64 for float32
          X (scikit-learn: in X's dtype); the inertia sums chunk by chunk in a fixed order.
        - NaN or inf in dense X is found by the fit's own full pass (the error is
          scikit-learn's), not by a pass of its own; sparse X, or a fit without a full pass
          (compute_labels=False and polish_iter=0), is checked first, as scikit-learn.
        - Negative sample weights are rejected (scikit-learn fails later, in choice(p=),
          or, in a partial_fit after the first, takes them into the centres).
        - Sparse rows use |x|^2 - 2 x.c + |c|^2 like scikit-learn; dense rows use
          sum((x - c)^2), which keeps precision far from the origin.
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), callable, "array-like"],
        "n_init": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "compute_labels": ["boolean"],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        "init_size": [Interval(Integral, 1, None, closed="left"), None],
        "reassignment_ratio": [Interval(Real, 0, None, closed="left")],
        "max_steps": [Interval(Integral, 0, None, closed="left"), None],
        "polish_iter": [Interval(Integral, 0, None, closed="left")],
        "init_lloyd_iter": [Interval(Integral, 0, None, closed="left")],
        "n_runs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
        max_steps: int | None = None,
        polish_iter: int = 0,
        init_lloyd_iter: int = 0,
        n_runs: int = 1,
    ) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.max_steps = max_steps
        self.polish_iter = polish_iter
        self.init_lloyd_iter = init_lloyd_iter
        self.n_runs = n_runs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _check_X(self, X: Any, reset: bool, finite: bool = True) -> Any:
        return validate_data(
            self,
            X,
            accept_sparse="csr",
            dtype=[np.float64, np.float32],
            order="C",
            accept_large_sparse=False,
            reset=reset,
            ensure_all_finite=finite,
        )

    def _check_params_vs_input(self, n_samples: int, n_features: int, dtype: Any) -> Any:
        """scikit-learn's derived settings (``_n_init``, ``_batch_size``, ``_init_size``),
        warnings and errors; returns the init, an array validated against X if one."""
        if n_samples < self.n_clusters:
            raise ValueError(f"n_samples={n_samples} should be >= n_clusters={self.n_clusters}.")
        init = self.init
        if self.n_init == "auto":
            self._n_init = 3 if isinstance(init, str) and init == "random" or callable(init) else 1
        else:
            self._n_init = int(self.n_init)
        if is_array_init(init):
            if self._n_init != 1:
                warnings.warn(
                    "Explicit initial center position passed: performing only one init in "
                    f"{type(self).__name__} instead of n_init={self._n_init}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._n_init = 1
            init = check_array(init, dtype=dtype, copy=True, order="C")
            check_center_shape(init, self.n_clusters, n_features)
        self._batch_size = min(self.batch_size, n_samples)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * self._batch_size
            if init_size < self.n_clusters:
                init_size = 3 * self.n_clusters
        elif init_size < self.n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than "
                f"n_clusters={self.n_clusters}. Setting it to min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=3,
            )
            init_size = 3 * self.n_clusters
        self._init_size: int = min(init_size, n_samples)
        return init

    def _plan(self, init: Any, n_samples: int, with_labels: bool) -> Plan:
        n_steps = (self.max_iter * n_samples) // self._batch_size
        if self.max_steps is not None:
            n_steps = min(n_steps, self.max_steps)
        return Plan(
            n_clusters=self.n_clusters,
            init=init,
            n_init=self._n_init,
            init_size=self._init_size,
            init_lloyd_iter=self.init_lloyd_iter,
            batch_size=self._batch_size,
            n_steps=n_steps,
            tol=self.tol,
            max_no_improvement=self.max_no_improvement,
            reassignment_ratio=self.reassignment_ratio,
            polish_iter=self.polish_iter,
            with_labels=with_labels,
            verbose=self.verbose,
        )

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the centroids on X by chunking it into mini-batches.

        Args:
            X: array-like or sparse matrix of shape (n_samples, n_features); float32 stays
                float32, integers become float64, CSC becomes CSR.
            y: ignored.
            sample_weight: array-like of shape (n_samples,), optional; batches are drawn
                by weight. Not used by an array or callable ``init``.

        Returns:
            self
        """
        self._validate_params()
        # On dense X a full pass at the end finds NaN or inf (a non-finite inertia). Without
        # one, or on sparse X (O(nnz) to check; its distances clip NaN away), check first.
        full_pass = self.compute_labels or self.polish_iter > 0
        X = self._check_X(X, reset=True, finite=False)
        if sp.issparse(X) or not full_pass:
            _assert_finite(X)
        weights = (  # unweighted fits share one weight: no n-sized array
            np.ones(1)
            if sample_weight is None
            else _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        )
        init = self._check_params_vs_input(X.shape[0], X.shape[1], X.dtype)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf input: raised below
            self._fit_source(InMemoryRows(X, weights), weights, init, self.compute_labels)
        if not np.isfinite(self.inertia_):
            _assert_finite(X)
        return self

    def fit_rows(self, data: RowSource) -> Any:
        """Fit on rows that live elsewhere (e.g. on Dask workers), unweighted.

        Gives the same centres as ``fit`` on the same rows in the same order. Sets every
        fitted attribute except ``labels_``, and returns the source's handle to the labels.
        """
        self._validate_params()
        sample = data.take(np.zeros(1, dtype=np.int64))
        init = self._check_params_vs_input(data.n_samples, sample.shape[1], data.dtype)
        return self._fit_source(data, np.ones(1), init, with_labels=True, keep_labels=False)

    def _fit_source(
        self,
        data: RowSource,
        weights: np.ndarray,
        init: Any,
        with_labels: bool,
        keep_labels: bool = True,
    ) -> Any:
        """Fits ``n_runs`` times, keeps the best run; returns its labels (or their handle)."""
        rng = check_random_state(self.random_state)
        plan = self._plan(init, data.n_samples, with_labels)
        # One seed per run: runs are independent, so a distributed source can run them at
        # once; the best (lowest inertia, first on ties) wins either way.
        seeds = rng.randint(np.iinfo(np.int32).max, size=self.n_runs)
        runs = map_runs(
            data, lambda s: fit_once(plan, data, weights, np.random.RandomState(s)), seeds
        )
        best = min(runs, key=lambda run: run.inertia)
        self.cluster_centers_ = best.centers.astype(data.dtype)
        self.inertia_, self.n_steps_, self.n_iter_ = best.inertia, best.n_steps, best.n_iter
        self._counts = best.counts
        self._n_since_last_reassign = 0
        if keep_labels and best.labels is not None:
            self.labels_ = best.labels
        self.n_features_in_ = self.cluster_centers_.shape[1]
        self._n_features_out = self.n_clusters
        return best.labels

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Update the centres with one mini-batch step over all of ``X``.

        The first call draws the starting centres from X (one start, as scikit-learn).

        Args:
            X: array-like or sparse matrix of shape (n_samples, n_features).
            y: ignored.
            sample_weight: array-like of shape (n_samples,), optional: each row's weight in
                the update.

        Returns:
            self
        """
        self._validate_params()
        first = not hasattr(self, "cluster_centers_")
        X = self._check_X(X, reset=first)
        if not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        self.n_steps_ = getattr(self, "n_steps_", 0)
        data = InMemoryRows(X, weights)
        if first:
            init = self._check_params_vs_input(X.shape[0], X.shape[1], X.dtype)
            centers64 = initial_centers(
                init,
                data,
                weights,
                self.n_clusters,
                self._init_size,
                self._random_state,
                self.init_lloyd_iter,
            )
            self._counts = np.zeros(self.n_clusters)
            self._n_since_last_reassign = 0
        else:
            centers64 = self.cluster_centers_.astype(np.float64)
        reassignments = Reassignments(self.n_clusters)
        reassignments.rows_since = self._n_since_last_reassign
        reassign = reassignments.due(X.shape[0], self._counts)
        self._n_since_last_reassign = reassignments.rows_since
        centers = centers64.astype(data.center_dtype)
        rows = np.arange(X.shape[0], dtype=np.int64)
        batch_labels = np.empty(X.shape[0], dtype=np.int32)
        minibatch_step(X, rows, weights, centers, centers64, self._counts, batch_labels)
        if reassign and self.reassignment_ratio > 0:
            args = (centers, centers64, self._counts, self.reassignment_ratio)
            reassign_small(X, rows, *args, self._random_state, self.verbose)
        self.cluster_centers_ = centers64.astype(X.dtype)
        if self.compute_labels:
            self.labels_, self.inertia_, _, _ = assign(X, self._centers_for(X), weights, False)
        self.n_steps_ += 1
        self._n_features_out = self.n_clusters
        return self

    def _centers_for(self, X: Any) -> np.ndarray:
        dtype = np.float64 if sp.issparse(X) else X.dtype
        return np.ascontiguousarray(self.cluster_centers_, dtype=dtype)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """``fit(X)``, then the index of each row's cluster, array of shape (n_samples,)."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest centre for each row of X, array of shape (n_samples,)."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        labels, _, _, _ = assign(X, self._centers_for(X), np.ones(1), with_sums=False)
        return labels

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:
        """``fit(X)``, then ``transform(X)``, with X converted once."""
        X = self._check_X(X, reset=True, finite=False)
        return self.fit(X, sample_weight=sample_weight)._transform(X)

    def transform(self, X: Any) -> np.ndarray:
        """Euclidean distances to every centre, array of shape (n_samples, n_clusters),
        dense even for sparse X."""
        check_is_fitted(self)
        return self._transform(self._check_X(X, reset=False))

    def _transform(self, X: Any) -> np.ndarray:
        return distances(X, self.cluster_centers_.astype(np.float64))

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the value of X on the K-means objective (its weighted inertia)."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        _, inertia, _, _ = assign(X, self._centers_for(X), weights, with_sums=False)
        return -inertia
