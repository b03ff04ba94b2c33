"""The behavioural space K-Means sees: which feature columns, how each is scaled.

* counts, money and per-session figures -> log1p (heavy tails would otherwise dominate);
* rates stay in [0, 1]; recency is divided by the observed window;
* every column is then standardised (z-score; constant columns become 0);
* the ``share_<category>`` block is scaled so that, together, it weighs as much as
  ``CATEGORY_BLOCK_WEIGHT`` behavioural columns, whatever the number of categories.

Users are put in the order of the stable user hash: the K-Means row order of every backend.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.exceptions import DataValidationError
from engine.schema import user_hash

# One or two columns per behavioural concept, so no concept dominates by repetition.
LOG_COLUMNS = (
    "n_events",
    "events_per_session",
    "n_purchase_sessions",
    "avg_order_value",
    "avg_view_price",
)
RATE_COLUMNS = ("view_to_cart", "remove_rate")
TIME_COLUMNS = ("recency_days",)
# The feature columns ``segment`` reads (besides any share_<category> columns).
NEEDED_COLUMNS = ("user_id", *LOG_COLUMNS, *RATE_COLUMNS, *TIME_COLUMNS, "tenure_days")
CATEGORY_BLOCK_WEIGHT = 16.0


def _raw_expressions(features: pl.DataFrame, window: float) -> list[pl.Expr]:
    """One expression per K-Means column (before standardisation), in matrix order."""
    share_cols = [c for c in features.columns if c.startswith("share_")]
    window = max(window, 1e-9)
    exprs = [pl.col(c).cast(pl.Float64).log1p().alias(c) for c in LOG_COLUMNS]
    exprs += [pl.col(c).cast(pl.Float64) for c in RATE_COLUMNS]
    exprs += [(pl.col(c) / window).alias(c) for c in TIME_COLUMNS]
    exprs += [pl.col(c).cast(pl.Float64) for c in share_cols]
    return [e.fill_null(0.0).fill_nan(0.0) for e in exprs]


def _raw_column(features: pl.DataFrame, expr: pl.Expr, order: np.ndarray | None) -> np.ndarray:
    values = features.select(expr).to_series().to_numpy()
    return values if order is None else values[order]


def raw_columns(features: pl.DataFrame, window: float) -> tuple[np.ndarray, list[str]]:
    """The K-Means columns before standardisation, float64 array of shape (n_users,
    n_columns), column-major (filled a column at a time: no second copy of every column).

    ``window`` (the largest tenure_days of all users) scales recency into [0, 1].
    """
    exprs = _raw_expressions(features, window)
    raw = np.empty((features.height, len(exprs)), order="F")
    for j, expr in enumerate(exprs):
        raw[:, j] = _raw_column(features, expr, None)
    return raw, [e.meta.output_name() for e in exprs]


def window_of(features: pl.DataFrame) -> float:
    """The observed window in days (largest tenure), for ``raw_columns``.

    Raises:
        DataValidationError: when ``features`` lack a column K-Means needs.
    """
    missing = [c for c in NEEDED_COLUMNS if c not in features.columns]
    if missing:
        raise DataValidationError(
            f"features lack {missing}. Hint: compute them with `ecomscale features`"
        )
    return float(features.select(pl.col("tenure_days").max()).item() or 0.0)


def column_moments(raw: np.ndarray) -> np.ndarray:
    """Count, mean and sum of squared deviations per column, array of shape (3, n_columns).

    Column by column: temporaries of one column, not of the whole array."""
    moments = np.empty((3, raw.shape[1]))
    for j in range(raw.shape[1]):
        column = raw[:, j]
        mean = column.mean()
        moments[:, j] = raw.shape[0], mean, ((column - mean) ** 2).sum()
    return moments


def scaling(moments: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per column from the moments of consecutive partitions.

    Partitions are merged in order (Chan et al.); the results are rounded to float32, so a
    different partitioning of the same users (which moves only the last float64 bits)
    gives the same matrix.
    """
    count, mean, m2 = moments[0]
    for other_count, other_mean, other_m2 in moments[1:]:
        total = count + other_count
        delta = other_mean - mean
        mean = mean + delta * other_count / total
        m2 = m2 + other_m2 + delta**2 * count * other_count / total
        count = total
    std = np.sqrt(m2 / count)
    as32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731
    return as32(mean), as32(std)


def _column_weights(columns: list[str]) -> np.ndarray:
    """Weight per column after the z-score: the share block together weighs as much as
    CATEGORY_BLOCK_WEIGHT behavioural columns."""
    n_share = sum(c.startswith("share_") for c in columns)
    share = np.sqrt(CATEGORY_BLOCK_WEIGHT / n_share) if n_share else 1.0
    return np.array([share if c.startswith("share_") else 1.0 for c in columns])


def _standardised(column: np.ndarray, mean: float, std: float, weight: float) -> np.ndarray:
    """z-scores of one raw column (a constant column becomes 0), times its weight."""
    return (column - mean) / (std if std > 0 else 1.0) * weight


def standardise(
    raw: np.ndarray, columns: list[str], mean: np.ndarray, std: np.ndarray
) -> np.ndarray:
    """The K-Means matrix (float32, C order) from the raw columns and the scaling of all
    users (``scaling``): z-scores, share block reweighted."""
    weights = _column_weights(columns)
    matrix = np.empty(raw.shape, dtype=np.float32)
    for j in range(raw.shape[1]):
        matrix[:, j] = _standardised(raw[:, j], mean[j], std[j], weights[j])
    return matrix


def prepare(
    features: pl.DataFrame, order: np.ndarray | None = None
) -> tuple[np.ndarray, list[str]]:
    """The K-Means matrix, array of shape (n_users, n_columns) float32, and its columns;
    rows in ``order`` (row indices of ``features``) when given.

    The same numbers as ``standardise(raw_columns(...))`` with ``scaling`` of one partition
    (the distributed path), built a column at a time: memory for the float32 matrix and a
    few columns, not for a float64 copy of every column.
    """
    exprs = _raw_expressions(features, window_of(features))
    columns = [e.meta.output_name() for e in exprs]
    weights = _column_weights(columns)
    matrix = np.empty((features.height, len(exprs)), dtype=np.float32)
    for j, expr in enumerate(exprs):
        column = _raw_column(features, expr, order)
        mean, std = scaling([column_moments(column[:, None])])
        matrix[:, j] = _standardised(column, mean[0], std[0], weights[j])
    return matrix, columns


def in_hash_order(features: pl.DataFrame) -> pl.DataFrame:
    """Users ordered by the stable user hash: the K-Means row order of every backend.

    Bucket b of any bucketed layout holds a contiguous run of this order, so the serial and
    the distributed fit see the same rows at the same indices.
    """
    return features.sort(user_hash(pl.col("user_id")))


def hash_order(features: pl.DataFrame) -> np.ndarray:
    """The row indices that put ``features`` in ``in_hash_order``'s order (no copy of the
    features: the serial path reorders only the K-Means columns)."""
    return features.select(pl.arg_sort_by(user_hash(pl.col("user_id")))).to_series().to_numpy()
