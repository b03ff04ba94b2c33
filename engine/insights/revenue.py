"""Revenue and conversion by segment."""

from __future__ import annotations

import polars as pl


def revenue_by_segment(features: pl.LazyFrame, segments: pl.LazyFrame) -> pl.LazyFrame:
    """Per segment: users, buyers, conversion (buyer share), revenue and its share, AOV."""
    joined = features.join(segments.select("user_id", "segment", "segment_name"), on="user_id")
    return (
        joined.group_by("segment", "segment_name")
        .agg(
            pl.len().alias("users"),
            (pl.col("n_purchases") > 0).sum().alias("buyers"),
            pl.col("revenue").sum(),
            pl.col("n_purchases").sum().alias("purchases"),
        )
        .with_columns(
            (pl.col("buyers") / pl.col("users")).alias("conversion"),
            (pl.col("revenue") / pl.col("revenue").sum()).fill_nan(0.0).alias("revenue_share"),
            (pl.col("revenue") / pl.col("users")).alias("revenue_per_user"),
            pl.when(pl.col("purchases") > 0)
            .then(pl.col("revenue") / pl.col("purchases"))
            .otherwise(0.0)
            .alias("avg_order_value"),
        )
        .sort("segment")
    )
