"""Categories: the list that gets share features, their column names, and per-event codes."""

from __future__ import annotations

import re

import polars as pl

from engine.exceptions import ConfigError
from engine.features.lookup import dense_lookup

MAX_CATEGORIES = 200


def share_column(category: str) -> str:
    """Feature name of a category's view share: ``share_<category>`` as an identifier."""
    return "share_" + (re.sub(r"[^0-9a-zA-Z]+", "_", category).strip("_").lower() or "blank")


def category_list(products: pl.LazyFrame | pl.DataFrame | None) -> list[str]:
    """All categories in the products table, sorted (a small collect, for the edge)."""
    if products is None:
        return []
    categories = (
        products.lazy()
        .select(pl.col("category").drop_nulls().unique().sort())
        .collect()["category"]
        .to_list()
    )
    if len(categories) > MAX_CATEGORIES:
        raise ConfigError(
            f"{len(categories)} categories; at most {MAX_CATEGORIES} get share features. "
            "Hint: map a coarser category column with --column category=NAME"
        )
    return categories


def with_category_codes(
    events: pl.LazyFrame, products: pl.DataFrame | pl.LazyFrame, ordered: list[str]
) -> pl.LazyFrame:
    """Add ``_cat``, the event's product category as a small integer code (its index in
    ``ordered``; null for products without a known category), so that the per-user view
    counts compare integers, not strings; and ``_lref``, the log of the median base price of
    the product's category (products without a category form one group of their own), the
    reference of the price index.

    A products DataFrame (collected at the edge) with dense unsigned ids goes through
    ``dense_lookup``; a LazyFrame, or sparse ids, take a join (nothing is collected here).
    """
    code = pl.col("category").replace_strict(
        {c: i for i, c in enumerate(ordered)}, default=None, return_dtype=pl.UInt16
    )
    if "base_price" in products.collect_schema().names():
        # A group-by and a join, not median().over(): a window would leave the streaming
        # engine for the products table.
        price = pl.col("base_price").cast(pl.Float64)
        if isinstance(products, pl.DataFrame):
            medians = products.group_by("category").agg(price.median().alias("_ref"))
            products = products.join(medians, on="category", how="left", nulls_equal=True)
        else:  # (the median of a lazy products table runs in memory: one row per product)
            lazy_medians = products.group_by("category").agg(price.median().alias("_ref"))
            products = products.join(lazy_medians, on="category", how="left", nulls_equal=True)
        lref = pl.when(pl.col("_ref") > 0).then(pl.col("_ref").log()).otherwise(None)
    else:  # no prices to compare with: the price index is 0 for everyone
        lref = pl.lit(None, pl.Float64)
    columns = ("product_id", code.alias("_cat"), lref.alias("_lref"))
    if isinstance(products, pl.DataFrame):
        table = products.select(*columns)
        cat = dense_lookup(table["product_id"], table["_cat"], pl.col("product_id"))
        ref = dense_lookup(table["product_id"], table["_lref"], pl.col("product_id"))
        if cat is not None and ref is not None:
            return events.with_columns(cat.alias("_cat"), ref.alias("_lref"))
    return events.join(products.lazy().select(*columns), on="product_id", how="left")
