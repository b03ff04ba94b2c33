"""Segment profiles: per segment, its size, buyers, top category and the mean of every
numeric feature, from mergeable per-partition sums (the serial and Dask paths share them)."""

from __future__ import annotations

import numpy as np
import polars as pl


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
    # Performance note: streaming, so the Float64 casts go morsel by morsel; in memory they
    # were whole-column copies of every feature (checked at millions of users). Keep it.
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
