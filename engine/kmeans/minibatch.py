"""One MiniBatchKMeans fit over a RowSource: scikit-learn's procedure, step for step.

best of ``n_init`` starting centres (inertia on a validation sample) -> mini-batch steps
(batches drawn by weight; Sculley per-centre learning rates; small centres reassigned) until
``max_iter`` epochs, ``max_steps`` or early stopping -> labels and exact inertia in one full
pass. ecomscale's extra, ``polish_iter``, replaces that pass by Lloyd passes that stop when
the centres settle; their last pass gives the labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.kmeans.init import initial_centers
from engine.kmeans.rows import RowSource, assign, minibatch_step

STEPS_PER_FETCH = 10  # first mini-batches drawn ahead (one fetch from a distributed source)
# Polishing stops when a full pass lowers the inertia by less than this fraction.
POLISH_RTOL = 1e-5


@dataclass(frozen=True)
class Plan:
    """The resolved settings of one fit (what ``MiniBatchKMeans`` derives from its params)."""

    n_clusters: int
    init: Any
    n_init: int
    init_size: int
    init_lloyd_iter: int
    batch_size: int
    n_steps: int
    tol: float  # relative to the mean feature variance, as scikit-learn's
    max_no_improvement: int | None
    reassignment_ratio: float
    polish_iter: int
    with_labels: bool  # a full pass at the end (else the inertia is the EWA estimate)
    verbose: int


@dataclass
class Run:
    centers: np.ndarray  # in the source's dtype
    labels: Any  # the last full pass's labels (or handle); None without one
    inertia: float
    n_steps: int
    n_iter: int
    counts: np.ndarray  # weight seen per centre (what partial_fit continues from)


class Convergence:
    """scikit-learn's early stopping: the squared centre shift of a step below tol, or no
    new minimum of the EWA of the mean batch inertia in ``max_no_improvement`` steps."""

    def __init__(self, plan: Plan, n_samples: int, tol: float) -> None:
        self.plan, self.n_samples, self.tol = plan, n_samples, tol
        self.ewa_inertia: float | None = None
        self.ewa_min: float | None = None
        self.no_improvement = 0

    def __call__(self, step: int, shift: float, batch_inertia: float) -> bool:
        plan, say = self.plan, self.plan.verbose
        batch_inertia /= plan.batch_size
        if step == 1:  # the first batch's inertia is the initialisation's
            if say:
                print(f"Minibatch step {step}/{plan.n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self.ewa_inertia is None:
            self.ewa_inertia = batch_inertia
        else:
            alpha = min(plan.batch_size * 2.0 / (self.n_samples + 1), 1)
            self.ewa_inertia = self.ewa_inertia * (1 - alpha) + batch_inertia * alpha
        if say:
            print(
                f"Minibatch step {step}/{plan.n_steps}: mean batch inertia: "
                f"{batch_inertia}, ewa inertia: {self.ewa_inertia}"
            )
        if self.tol > 0.0 and shift <= self.tol:
            if say:
                print(f"Converged (small centers change) at step {step}/{plan.n_steps}")
            return True
        if self.ewa_min is None or self.ewa_inertia < self.ewa_min:
            self.no_improvement, self.ewa_min = 0, self.ewa_inertia
        else:
            self.no_improvement += 1
        if plan.max_no_improvement is not None and self.no_improvement >= plan.max_no_improvement:
            if say:
                print(f"Converged (lack of improvement in inertia) at step {step}/{plan.n_steps}")
            return True
        return False


def mean_variance(X: Any) -> float:
    """Mean per-feature variance (scales ``tol``)."""
    if sp.issparse(X):
        mean = np.asarray(X.mean(axis=0), dtype=np.float64)
        return float(np.mean(np.asarray(X.multiply(X).mean(axis=0)) - mean**2))
    return float(np.mean(np.var(X, axis=0, dtype=np.float64)))


def reassign_small(
    X: Any,
    idx: np.ndarray,
    centers: np.ndarray,
    centers64: np.ndarray,
    counts: np.ndarray,
    ratio: float,
    rng: np.random.RandomState,
    verbose: int,
) -> None:
    """Move the centres that have seen less than ``ratio`` of the busiest centre's weight to
    random rows of the batch (at most half the batch); their counts restart at the smallest
    count kept, so they are not reassigned again at once (scikit-learn's rule)."""
    small = counts < ratio * counts.max()
    if small.sum() > 0.5 * idx.size:
        small[np.argsort(counts, kind="stable")[int(0.5 * idx.size) :]] = False
    n_small = int(small.sum())
    if n_small:
        rows = X[idx[rng.choice(idx.size, replace=False, size=n_small)]]
        rows = rows.toarray() if sp.issparse(rows) else rows
        if verbose:
            print(f"[MiniBatchKMeans] Reassigning {n_small} cluster centers.")
        centers64[small] = rows
        centers[small] = rows
    if (~small).any():
        counts[small] = counts[~small].min()


class Reassignments:
    """When to reassign (scikit-learn's rule): every 10 x n_clusters rows seen, and whenever
    a centre has seen no rows yet."""

    def __init__(self, n_clusters: int) -> None:
        self.n_clusters, self.rows_since = n_clusters, 0

    def due(self, batch_rows: int, counts: np.ndarray) -> bool:
        self.rows_since += batch_rows
        if (counts == 0).any() or self.rows_since >= 10 * self.n_clusters:
            self.rows_since = 0
            return True
        return False


def best_start(
    plan: Plan, data: RowSource, weights: np.ndarray, rng: np.random.RandomState
) -> tuple[np.ndarray, Any]:
    """The best of ``n_init`` starting centres (float64) by their inertia on a validation
    sample of ``init_size`` rows, and that sample."""
    n = data.n_samples
    valid_rows = rng.randint(0, n, plan.init_size)
    valid = data.take(valid_rows)
    valid_weights = weights[valid_rows] if weights.size == n else np.ones(valid_rows.size)
    best, best_inertia = None, np.inf
    for i in range(plan.n_init):
        if plan.verbose:
            print(f"Init {i + 1}/{plan.n_init} with method {plan.init}")
        centers = initial_centers(
            plan.init, data, weights, plan.n_clusters, plan.init_size, rng, plan.init_lloyd_iter
        )
        _, inertia, _, _ = assign(valid, centers.astype(data.center_dtype), valid_weights, False)
        if plan.verbose:
            print(f"Inertia for init {i + 1}/{plan.n_init}: {inertia}")
        if best is None or inertia < best_inertia:  # a NaN inertia keeps the first
            best, best_inertia = centers, inertia
    assert best is not None
    return best, valid


def fit_once(plan: Plan, data: RowSource, weights: np.ndarray, rng: np.random.RandomState) -> Run:
    """One fit from one random stream; kernels are deterministic, so the stream decides."""
    n = data.n_samples
    centers64, valid = best_start(plan, data, weights, rng)
    centers = centers64.astype(data.center_dtype)
    tol = plan.tol * mean_variance(valid) if plan.tol > 0 else 0.0
    stop = Convergence(plan, n, tol)
    reassignments = Reassignments(plan.n_clusters)

    # Batches are drawn by weight, from their own stream, STEPS_PER_FETCH steps ahead, so a
    # distributed source can fetch those rows in one round trip. Binary search in the
    # weights' running sum: O(batch log n) per step, not O(n) as numpy's choice(p=).
    batch_rng = np.random.RandomState(rng.randint(2**31 - 1))
    cdf = None if weights.size == 1 else np.cumsum(weights)
    batch = plan.batch_size

    def draw() -> np.ndarray:
        # Unit weights draw the same rows as no weights: floor(u * n) is that search.
        u = batch_rng.uniform(size=batch)
        idx = (
            (u * n).astype(np.int64) if cdf is None else np.searchsorted(cdf, u * cdf[-1], "right")
        )
        return np.minimum(idx, n - 1).astype(np.int64)

    unit_weights = np.ones(batch)
    counts = np.zeros(plan.n_clusters)
    batch_labels = np.empty(batch, dtype=np.int32)
    steps = 0
    pending: list[tuple[Any, np.ndarray]] = []
    for steps in range(1, plan.n_steps + 1):
        if not pending:  # remote rows: 10, 20, 40... steps per fetch; local: one step
            ahead = max(STEPS_PER_FETCH, steps - 1) if data.concurrent else 1
            ahead = min(ahead, plan.n_steps - steps + 1)
            pending = data.batches([draw() for _ in range(ahead)])
        X, idx = pending.pop(0)
        before = centers64.copy() if tol > 0 else None
        reassign = reassignments.due(batch, counts)
        inertia = minibatch_step(X, idx, unit_weights, centers, centers64, counts, batch_labels)
        if reassign and plan.reassignment_ratio > 0:
            args = (centers, centers64, counts, plan.reassignment_ratio, rng, plan.verbose)
            reassign_small(X, idx, *args)
        shift = float(((centers64 - before) ** 2).sum()) if before is not None else 0.0
        if stop(steps, shift, inertia):
            break
    n_iter = math.ceil(steps * batch / n)
    if plan.polish_iter:
        return polish(plan, data, centers64, tol, steps, n_iter, counts)
    if plan.with_labels or stop.ewa_inertia is None:
        inertia, _, _, labels = data.full_pass(centers, False)
    else:
        labels, inertia = None, stop.ewa_inertia * _total_weight(weights, n)
    return Run(centers, labels, inertia, steps, n_iter, counts)


def _total_weight(weights: np.ndarray, n: int) -> float:
    return float(weights[0] * n if weights.size == 1 else weights.sum())


def polish(
    plan: Plan,
    data: RowSource,
    centers64: np.ndarray,
    tol: float,
    steps: int,
    n_iter: int,
    counts: np.ndarray,
) -> Run:
    """Lloyd passes until the centres stop moving (squared shift <= tol) or a pass no longer
    lowers the inertia by POLISH_RTOL of itself. Each pass gives labels and exact inertia
    for the centres it used; when the update that follows is below tol, that consistent
    triple is the result (no extra labelling pass)."""
    centers = centers64.astype(data.center_dtype)
    inertia = np.inf
    labels = None  # one buffer (or handle) per run, reused by every pass
    for _ in range(plan.polish_iter):
        previous = inertia
        inertia, sums, seen, labels = data.full_pass(centers, True, labels)
        n_iter += 1
        if plan.verbose:
            print(f"Lloyd pass {n_iter}: inertia {inertia}")
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
        centers = centers64.astype(data.center_dtype)
    else:
        inertia, _, _, labels = data.full_pass(centers, False, labels)
    return Run(centers, labels, inertia, steps, n_iter, counts)
