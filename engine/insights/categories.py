"""Category preference by segment: which categories a segment views more than everyone."""

from __future__ import annotations

import polars as pl

from engine.features.lookup import dense_lookup
from engine.insights.common import NO_CATEGORY, with_segment


def category_preference(
    events: pl.LazyFrame,
    products: pl.DataFrame | pl.LazyFrame,
    segments: pl.DataFrame | pl.LazyFrame,
) -> pl.LazyFrame:
    """Per segment and category: views, share of the segment's views, and lift.

    lift = share in the segment / share among all users' views (1 = no preference). Views
    of products without a category (or missing from ``products``) count as "(none)".
    ``products`` and ``segments`` are small tables: collected at the edge (DataFrames) they
    are looked up by id, else joined.
    """
    views = events.filter(pl.col("event_type") == "view").select("user_id", "product_id")
    lookup = None
    if isinstance(products, pl.DataFrame):
        table = products.select("product_id", "category")
        category = table["category"].fill_null(NO_CATEGORY)
        category = category.cast(
            pl.Enum(pl.concat([category, pl.Series([NO_CATEGORY])]).unique().sort())
        )
        lookup = dense_lookup(table["product_id"], category, pl.col("product_id"), NO_CATEGORY)
    if lookup is None:  # a lazy table, sparse or signed ids: a join
        views = views.join(
            products.lazy().select("product_id", "category"), on="product_id", how="left"
        ).with_columns(pl.col("category").fill_null(NO_CATEGORY))
    else:
        views = views.with_columns(lookup.alias("category"))
    per_segment = (
        with_segment(views, segments)
        .group_by("segment_name", "category")
        .agg(pl.len().alias("views"))
    )
    overall = (
        views.group_by("category")
        .agg(pl.len().alias("all_views"))
        .select(
            "category", (pl.col("all_views") / pl.col("all_views").sum()).alias("overall_share")
        )
    )
    return (
        per_segment.join(overall, on="category")
        .with_columns(pl.col("segment_name", "category").cast(pl.String))
        .with_columns((pl.col("views") / pl.col("views").sum().over("segment_name")).alias("share"))
        .with_columns((pl.col("share") / pl.col("overall_share")).alias("lift"))
        .select("segment_name", "category", "views", "share", "overall_share", "lift")
        .sort("segment_name", "category")
    )
