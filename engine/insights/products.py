"""Interest versus purchase, per product."""

from __future__ import annotations

import polars as pl


def product_interest(events: pl.LazyFrame, products: pl.LazyFrame | None) -> pl.LazyFrame:
    """Per product: views, carts, purchases and purchases per view (products with a view)."""
    per_product = (
        events.group_by("product_id")
        .agg(
            (pl.col("event_type") == "view").sum().alias("views"),
            (pl.col("event_type") == "add_to_cart").sum().alias("carts"),
            (pl.col("event_type") == "purchase").sum().alias("purchases"),
        )
        .filter(pl.col("views") > 0)
        .with_columns((pl.col("purchases") / pl.col("views")).alias("purchase_per_view"))
    )
    if products is not None:
        per_product = per_product.join(
            products.select("product_id", "category", "brand"), on="product_id", how="left"
        )
    return per_product.sort("views", "product_id", descending=[True, False])


def interest_rank_correlation(interest: pl.LazyFrame) -> pl.LazyFrame:
    """Spearman rank correlation between views and purchases across products."""
    return interest.select(
        pl.corr("views", "purchases", method="spearman").alias("spearman"),
        pl.len().alias("products"),
    )


def viewed_not_bought(interest: pl.LazyFrame, top: int = 15) -> pl.LazyFrame:
    """The most viewed products that are rarely bought.

    Among the top 5% of products by views, the ``top`` with the fewest purchases per view
    (ties: more views first).
    """
    threshold = pl.col("views").quantile(0.95, interpolation="lower")
    return (
        interest.filter(pl.col("views") >= threshold)
        .sort(["purchase_per_view", "views", "product_id"], descending=[False, True, False])
        .head(top)
    )
