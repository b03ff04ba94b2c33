"""The behavioural space K-Means sees: which columns, why each is in, how each is scaled.

Segments are found from behaviour; category taste is a profile and an insight, not what
decides them (``space="behaviour+category"`` adds the ``share_<category>`` block, off by
default). One column per behavioural concept, so no concept dominates by repetition:

* activity = log1p(n_sessions): how often someone comes (log: heavy-tailed);
* lapse = log1p(recency / the user's own mean gap between visits), 0 after a single visit:
  "overdue" - someone who came every 2 days and has not come for 20 is gone, while one
  visit says nothing about lapsing;
* purchase_frequency = log1p(n_purchase_sessions): non-buyers, one-time, repeat buyers;
* cart_rate = (n_carts + M p0) / (n_views + M), M = CART_EVIDENCE: cart behaviour, shrunk
  towards the population's rate p0 by the user's evidence;
* price_level = price_index * n_views / (n_views + PRICE_EVIDENCE): price sensitivity
  against the median price of each viewed product's category (so it carries no category
  taste), shrunk towards 0 likewise.

Then every column is standardised (z-score; constant columns become 0). Shrinkage matters:
a raw rate or mean price of a user with two views is mostly noise, and K-Means would split
the many light users along that noise. Tried and left out: raw recency (a one-visit user's
recency is when they happened to come, which K-Means split the light users along), session
length and order value (noise that lowered the persona recovery at every separation), raw
view prices (they carry category taste: books cost less than computers).

Users are put in the order of the stable user hash: the K-Means row order of every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from engine.exceptions import DataValidationError
from engine.schema import user_hash

Space = Literal["behaviour", "behaviour+category"]
SPACES: tuple[str, ...] = ("behaviour", "behaviour+category")
BEHAVIOUR_COLUMNS = ("activity", "lapse", "purchase_frequency", "cart_rate", "price_level")
CART_EVIDENCE = 20.0  # views that weigh as much as the population's cart rate
PRICE_EVIDENCE = 10.0  # views that weigh as much as the population's price level (0)
# The feature columns ``segment`` reads (besides any share_<category> columns).
NEEDED_COLUMNS = (
    *("user_id", "n_sessions", "recency_days", "tenure_days", "n_purchase_sessions"),
    *("n_carts", "n_views", "price_index"),
)
CATEGORY_BLOCK_WEIGHT = 16.0
_MIN_GAP_DAYS = 1.0 / 24  # visits an hour apart or less count as an hour apart


@dataclass(frozen=True)
class Population:
    """What the space needs to know of all users: their cart rate (the shrinkage target).

    Built from per-partition ``population_sums`` so every backend gets the same value.
    """

    cart_rate: float

    @classmethod
    def merge(cls, sums: list[np.ndarray]) -> Population:
        carts, views = np.sum(sums, axis=0)
        return cls(float(carts / views) if views > 0 else 0.0)


def check_columns(features: pl.DataFrame | pl.LazyFrame) -> None:
    """A one-line error when ``features`` lack a column K-Means needs."""
    names = features.collect_schema().names()
    missing = [c for c in NEEDED_COLUMNS if c not in names]
    if missing:
        raise DataValidationError(
            f"features lack {missing}. Hint: compute them with `ecomscale features`"
        )


def population_sums(features: pl.DataFrame) -> np.ndarray:
    """Carts and views of some users (mergeable across partitions)."""
    check_columns(features)
    sums = features.select(pl.col("n_carts").sum(), pl.col("n_views").sum()).row(0)
    return np.array(sums, dtype=np.float64)


def _raw_expressions(
    features: pl.DataFrame, population: Population, space: Space = "behaviour"
) -> list[pl.Expr]:
    """One expression per K-Means column (before standardisation), in matrix order."""
    sessions = pl.col("n_sessions").cast(pl.Float64)
    views = pl.col("n_views").cast(pl.Float64)
    span = pl.col("tenure_days") - pl.col("recency_days")  # first to last event
    mean_gap = (span / (sessions - 1).clip(lower_bound=1)).clip(lower_bound=_MIN_GAP_DAYS)
    overdue = pl.when(sessions >= 2).then(pl.col("recency_days") / mean_gap).otherwise(0.0)
    cart_rate = (pl.col("n_carts") + CART_EVIDENCE * population.cart_rate) / (views + CART_EVIDENCE)
    exprs = [
        sessions.log1p().alias("activity"),
        overdue.log1p().alias("lapse"),
        pl.col("n_purchase_sessions").cast(pl.Float64).log1p().alias("purchase_frequency"),
        cart_rate.alias("cart_rate"),
        (pl.col("price_index") * views / (views + PRICE_EVIDENCE)).alias("price_level"),
    ]
    if space == "behaviour+category":
        shares = [c for c in features.columns if c.startswith("share_")]
        exprs += [pl.col(c).cast(pl.Float64) for c in shares]
    return [e.fill_null(0.0).fill_nan(0.0) for e in exprs]


def _raw_column(features: pl.DataFrame, expr: pl.Expr, order: np.ndarray | None) -> np.ndarray:
    values = features.select(expr).to_series().to_numpy()
    return values if order is None else values[order]


def raw_columns(
    features: pl.DataFrame, population: Population, space: Space = "behaviour"
) -> tuple[np.ndarray, list[str]]:
    """The K-Means columns before standardisation, float64 array of shape (n_users,
    n_columns), column-major (filled a column at a time: no second copy of every column).
    """
    exprs = _raw_expressions(features, population, space)
    raw = np.empty((features.height, len(exprs)), order="F")
    for j, expr in enumerate(exprs):
        raw[:, j] = _raw_column(features, expr, None)
    return raw, [e.meta.output_name() for e in exprs]


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
    features: pl.DataFrame, order: np.ndarray | None = None, space: Space = "behaviour"
) -> tuple[np.ndarray, list[str]]:
    """The K-Means matrix, array of shape (n_users, n_columns) float32, and its columns;
    rows in ``order`` (row indices of ``features``) when given.

    The same numbers as ``standardise(raw_columns(...))`` with ``scaling`` of one partition
    (the distributed path), built a column at a time: memory for the float32 matrix and a
    few columns, not for a float64 copy of every column.
    """
    population = Population.merge([population_sums(features)])
    exprs = _raw_expressions(features, population, space)
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
