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
    """Add ``_cat``: the event's product category as a small integer code (its index in
    ``ordered``; null for products without a known category), so that the per-user view
    counts compare integers, not strings.

    A products DataFrame (collected at the edge) with dense unsigned ids goes through
    ``dense_lookup``; a LazyFrame, or sparse ids, take a join (nothing is collected here).
    """
    code = pl.col("category").replace_strict(
        {c: i for i, c in enumerate(ordered)}, default=None, return_dtype=pl.UInt16
    )
    if isinstance(products, pl.DataFrame):
        table = products.select("product_id", code.alias("_cat"))
        lookup = dense_lookup(table["product_id"], table["_cat"], pl.col("product_id"))
        if lookup is not None:
            return events.with_columns(lookup.alias("_cat"))
    codes = products.lazy().select("product_id", code.alias("_cat"))
    return events.join(codes, on="product_id", how="left")
