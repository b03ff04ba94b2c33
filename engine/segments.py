"""engine.segment: prepare features for K-Means, choose k, cluster, profile and name segments.

Preparation (documented in the README):

* counts, money and per-session figures -> log1p (heavy tails would otherwise dominate);
* rates stay in [0, 1]; recency is divided by the observed window;
* every column is then standardised (z-score; constant columns become 0);
* the ``share_<category>`` block is scaled so that, together, it weighs as much as
  ``CATEGORY_BLOCK_WEIGHT`` behavioural columns, whatever the number of categories.

k="auto" fits k = 3..10 (5 initialisations each) and keeps the k with the best silhouette on
a fixed-seed sample of 4,000 users (k = 2 is left out: it almost always splits buyers from
non-buyers, which an analyst already knows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

import numpy as np
import polars as pl
from sklearn.metrics import pairwise_distances

from engine.exceptions import ConfigError, DataValidationError
from engine.kmeans import MiniBatchKMeans
from engine.kmeans.rows import InMemoryRows, RowSource, map_runs
from engine.naming import name_segments
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
K_MIN, K_MAX = 3, 10
N_INIT = 5
SILHOUETTE_SAMPLE = 4_000
CHOOSE_K_ROWS = 200_000  # larger inputs choose k on a uniform sample of this many users
# Reads the labels that a fit left in a RowSource, at given rows.
LabelsAt = Callable[[Any, np.ndarray], np.ndarray]


@dataclass
class Segmentation:
    """Result of ``segment``.

    Attributes:
        assignments: user_id, segment, segment_name (one row per user).
        profiles: one row per segment: size, share and mean of every feature (original units).
        names: segment -> name; rules: segment -> the rule that produced the name.
        k: number of segments; k_scores: k, inertia, silhouette for every k tried.
        inertia: K-Means inertia on the prepared matrix.
        columns: the prepared feature columns, in matrix order.
    """

    assignments: pl.DataFrame
    profiles: pl.DataFrame
    names: dict[int, str]
    rules: dict[int, str]
    k: int
    inertia: float
    columns: list[str]
    k_scores: pl.DataFrame = field(default_factory=pl.DataFrame)


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


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient, as scikit-learn's ``silhouette_score`` with
    ``metric="precomputed"`` defines it (0 for a point alone in its cluster), from a square
    matrix of pairwise distances: the per-cluster distance sums are one matrix product,
    ~6x faster than scikit-learn's chunked reduction on the 4,000-row sample."""
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
        model = MiniBatchKMeans(k, n_init=N_INIT, random_state=seed)
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
        model = MiniBatchKMeans(int(k), n_init=N_INIT, random_state=seed)
        found = model, model.fit_rows(data)
    return found[0], found[1], scores


def segment(
    features: pl.DataFrame, k: int | Literal["auto"] = "auto", seed: int = 0
) -> Segmentation:
    """Cluster users into segments and name them.

    Args:
        features: output of ``user_features`` (collected).
        k: number of segments, or "auto" (the best silhouette over k = 3..10).
        seed: random seed for K-Means and the silhouette sample.

    Returns:
        Segmentation.
    """
    n = features.height
    if n < 2:
        raise DataValidationError(f"need at least 2 users to segment, got {n}")
    if k != "auto" and (not isinstance(k, int) or k < 1 or k > n):
        raise ConfigError(f"k must be 'auto' or an integer in [1, {n}], got {k!r}")
    window_of(features)  # every needed column is there (a one-line error if not)
    # K-Means sees the users in hash order (as every backend does); the labels go back
    # to the features' own order.
    order = hash_order(features)
    matrix, columns = prepare(features, order)
    model, fitted, scores = fit_segments(InMemoryRows(matrix, np.ones(1)), k, seed)
    del matrix
    relabel = size_order(np.bincount(fitted, minlength=model.n_clusters))
    labels = np.empty(n, dtype=np.int32)
    labels[order] = relabel[fitted]
    with_segment = features.with_columns(_like_chunks(labels, features["user_id"], "segment"))
    profiles = profile(with_segment)
    assignments = with_segment.select("user_id", "segment").sort("user_id")
    return named(assignments, profiles, model.inertia_, columns, scores)


def _like_chunks(values: np.ndarray, like: pl.Series, name: str) -> pl.Series:
    """``values`` as an Int32 Series cut into the chunks of ``like``: added to a frame of
    many chunks (a features file read back), a one-chunk column would make the next select
    re-chunk every column of the frame (+0.6 GB for 2.75M users)."""
    bounds = np.cumsum([0, *like.chunk_lengths()])
    pieces = [pl.Series(name, values[a:b], dtype=pl.Int32) for a, b in pairwise(bounds)]
    return pl.concat(pieces, rechunk=False) if len(pieces) > 1 else pieces[0]


def size_order(sizes: np.ndarray) -> np.ndarray:
    """Old segment id -> new id, by size (0 = largest); -1 for a centre without users.

    Ids ordered by size are stable and readable; a centre that ended up with no users (fewer
    distinct users than k) is dropped, not shown empty.
    """
    order = np.argsort(-sizes, kind="stable")
    order = order[sizes[order] > 0]
    relabel = np.full(sizes.size, -1)
    relabel[order] = np.arange(order.size)
    return relabel


def named(
    assignments: pl.DataFrame,
    profiles: pl.DataFrame,
    inertia: float,
    columns: list[str],
    scores: pl.DataFrame,
) -> Segmentation:
    """Name the profiled segments and put the names on the assignments."""
    names, rules = name_segments(profiles)
    to_name = pl.col("segment").replace_strict(names, return_dtype=pl.String)
    assignments = assignments.with_columns(to_name.alias("segment_name"))
    profiles = profiles.with_columns(
        to_name.alias("segment_name"),
        pl.col("segment").replace_strict(rules, return_dtype=pl.String).alias("name_rule"),
    )
    k = profiles.height
    return Segmentation(assignments, profiles, names, rules, k, inertia, columns, scores)


def profile(with_segment: pl.DataFrame) -> pl.DataFrame:
    """Per-segment profile of users that carry a ``segment`` column (see merge_profiles)."""
    return merge_profiles([profile_partial(with_segment)], with_segment["segment"].n_unique())


def _numeric(schema: pl.Schema) -> list[str]:
    return [
        c for c, dtype in schema.items() if dtype.is_numeric() and c not in ("user_id", "segment")
    ]


def profile_partial(
    with_segment: pl.DataFrame | pl.LazyFrame,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Mergeable profile parts of some users: per segment the user count, buyers, and sum
    and non-null count of every numeric feature; and users per (segment, top_category)."""
    # Streaming: the Float64 casts go morsel by morsel (in memory they were whole-column
    # copies of every feature, +0.8 GB for 2.75M users).
    users = with_segment.lazy()
    numeric = _numeric(users.collect_schema())
    sums = users.group_by("segment").agg(
        pl.len().alias("users"),
        (pl.col("n_purchases") > 0).sum().alias("buyers"),
        *(pl.col(c).cast(pl.Float64).sum().alias(f"sum:{c}") for c in numeric),
        *(pl.col(c).count().alias(f"n:{c}") for c in numeric),
    )
    tops = users.drop_nulls("top_category").group_by("segment", "top_category").len()
    sums_frame, tops_frame = pl.collect_all([sums, tops], engine="streaming")
    return sums_frame, tops_frame


def merge_profiles(parts: list[tuple[pl.DataFrame, pl.DataFrame]], k: int) -> pl.DataFrame:
    """Per segment: users, share of users, buyer share, the most common top_category (ties:
    alphabetical) and the mean of every numeric feature, from ``profile_partial`` parts."""
    sums = pl.concat([p[0] for p in parts]).group_by("segment").sum()
    numeric = [c.removeprefix("sum:") for c in sums.columns if c.startswith("sum:")]
    tops = (
        pl.concat([p[1] for p in parts])
        .group_by("segment", "top_category")
        .agg(pl.col("len").sum())
        .sort(["segment", "len", "top_category"], descending=[False, True, False])
        .group_by("segment", maintain_order=True)
        .first()
        .select("segment", "top_category")
    )
    total = int(sums["users"].sum())
    profiles = sums.join(tops, on="segment", how="left").select(
        "segment",
        pl.col("users").cast(pl.UInt32),
        (pl.col("buyers") / pl.col("users")).alias("buyer_share"),
        "top_category",
        *((pl.col(f"sum:{c}") / pl.col(f"n:{c}")).alias(c) for c in numeric),
        (pl.col("users") / total).alias("user_share"),
    )
    profiles = profiles.filter(pl.col("segment") >= 0).sort("segment")
    if profiles.height != k:
        raise AssertionError(f"expected {k} profiled segments, got {profiles.height}")
    return profiles
