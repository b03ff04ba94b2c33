"""Per-user behavioural features as one lazy Polars query (definitions: shared/DESIGN.md).

Pure LazyFrame -> LazyFrame; nothing is collected here (the edge passes the products table
collected, for the category lookup). Sessionization uses whole-frame ``shift``/``cum_sum``
over events sorted by (user_id, ts), which the streaming engine runs natively, and one hash
group_by per user (its state grows with users, not events).

Session-level facts (did a session contain a purchase / a cart) come from a group-by per
(user, session) over the cart and purchase rows only (a few percent of a typical log).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from engine.features.categories import share_column, with_category_codes
from engine.features.sessions import DEFAULT_SESSION_GAP, sessionize

US_PER_DAY = 86_400_000_000
DAYS_PER_US = 1.0 / US_PER_DAY
GRID = float(1 << 20)  # price_index terms are rounded to multiples of 1 / GRID

CORE_FEATURES: tuple[str, ...] = (
    "n_events",
    "n_views",
    "n_carts",
    "n_removes",
    "n_purchases",
    "n_sessions",
    "n_products_viewed",
    "revenue",
    "avg_order_value",
    "view_to_cart",
    "purchase_session_rate",
    "cart_abandon_rate",
    "events_per_session",
    "active_days",
    "recency_days",
    "tenure_days",
    "top_category",
)
EXTRA_FEATURES: tuple[str, ...] = (
    "n_purchase_sessions",
    "cart_to_purchase",
    "remove_rate",
    "avg_view_price",
    "price_index",
)


def _ratio(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num).cast(pl.Float64) / pl.col(den)).otherwise(0.0)


def _cart_and_purchase_sessions(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per user (with any cart or purchase): sessions with a purchase, with a cart, with both.

    Only the rows that are carts or purchases (a few percent) are grouped by session
    (``_session``, a global session number); running counts over every row were tried and
    made the whole query slower.
    """
    kind = pl.col("event_type")
    return (
        events.filter(kind.is_in(["purchase", "add_to_cart"]))
        .group_by("user_id", "_session")
        .agg((kind == "purchase").any().alias("_buy"), (kind == "add_to_cart").any().alias("_cart"))
        .group_by("user_id")
        .agg(
            pl.col("_buy").sum().alias("n_purchase_sessions"),
            pl.col("_cart").sum().alias("_cart_sessions"),
            (pl.col("_cart") & pl.col("_buy")).sum().alias("_cart_buy_sessions"),
        )
    )


def user_features(
    events: pl.LazyFrame,
    products: pl.DataFrame | pl.LazyFrame | None = None,
    *,
    categories: Sequence[str] = (),
    as_of: dt.datetime | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
    extra_aggs: Sequence[pl.Expr] = (),
) -> pl.LazyFrame:
    """One row per user with every core feature, extras and ``share_<category>`` columns.

    Args:
        events: validated events in the contract schema, sorted by (user_id, ts).
        products: product_id -> category (needed for top_category and shares); a
            DataFrame (collected at the edge) is looked up by id, a LazyFrame joined.
        categories: the categories to give a share column (all categories for a correct
            top_category; see ``engine.features.categories.category_list``).
        as_of: reference time for recency/tenure; events after it are ignored. Default: the
            largest ts in ``events``.
        session_gap: a new session starts after a gap strictly greater than this.
        extra_aggs: more per-user aggregations over the events (up to ``as_of``), computed
            in the same group-by and appended as the last columns (the features stage
            counts broken rows this way, in the same pass over the data).

    Returns:
        LazyFrame sorted by user_id.
    """
    if as_of is not None:
        events = events.filter(pl.col("ts") <= as_of)
    ordered = sorted(set(categories))
    flagged = sessionize(events, session_gap).with_columns(
        pl.col("new_session").cum_sum().alias("_session")  # a global session number
    )
    day = pl.col("ts").dt.epoch("us") // US_PER_DAY  # the UTC date, as a day number
    flagged = flagged.with_columns(
        ((pl.col("user_id") != pl.col("user_id").shift(1)) | (day != day.shift(1)))
        .fill_null(True)
        .alias("_new_day")
    )
    if products is not None and ordered:
        flagged = with_category_codes(flagged, products, ordered)
    else:
        flagged = flagged.with_columns(
            pl.lit(None, pl.UInt16).alias("_cat"), pl.lit(None, pl.Float64).alias("_lref")
        )
    is_view = pl.col("event_type") == "view"
    is_purchase = pl.col("event_type") == "purchase"
    viewed = pl.when(is_view).then(pl.col("product_id"))
    count = lambda kind: (pl.col("event_type") == kind).sum()  # noqa: E731
    view_counts = [
        (is_view & (pl.col("_cat") == i)).sum().alias(f"_v{i}") for i in range(len(ordered))
    ]
    per_user = flagged.group_by("user_id").agg(
        pl.len().alias("n_events"),
        count("view").alias("n_views"),
        count("add_to_cart").alias("n_carts"),
        count("remove_from_cart").alias("n_removes"),
        count("purchase").alias("n_purchases"),
        pl.col("new_session").sum().alias("n_sessions"),
        # Distinct viewed products: null stands for "not a view" and is taken back out
        # (cheaper than filter().n_unique() on the streaming engine).
        (viewed.n_unique() - viewed.is_null().any().cast(pl.UInt32)).alias("n_products_viewed"),
        pl.when(is_purchase).then(pl.col("price").cast(pl.Float64)).sum().alias("revenue"),
        pl.col("_new_day").sum().alias("active_days"),
        pl.col("ts").min().alias("_first_ts"),
        pl.col("ts").max().alias("_last_ts"),
        pl.when(is_view).then(pl.col("price").cast(pl.Float64)).mean().alias("avg_view_price"),
        # Each view's log price ratio on a grid of 2^-20: sums of grid values are exact, so
        # the mean does not depend on the order the rows reach the group-by.
        pl.when(is_view & (pl.col("price") > 0))
        .then(((pl.col("price").cast(pl.Float64).log() - pl.col("_lref")) * GRID).round() / GRID)
        .mean()
        .alias("price_index"),
        *view_counts,
        *extra_aggs,
    )
    per_user = per_user.join(_cart_and_purchase_sessions(flagged), on="user_id", how="left")
    per_user = per_user.with_columns(
        pl.col("n_purchase_sessions", "_cart_sessions", "_cart_buy_sessions").fill_null(0)
    )
    reference = pl.lit(as_of, dtype=pl.Datetime("us", "UTC")) if as_of else pl.col("_last_ts").max()
    # Times a constant, not divided by one: Polars divides by a scalar as a multiplication
    # in its vector loops only, so the last bit would depend on where a row sits in a chunk.
    days = lambda since: (reference - pl.col(since)).dt.total_microseconds() * DAYS_PER_US  # noqa: E731
    best = pl.max_horizontal([pl.col(f"_v{i}") for i in range(len(ordered))]) if ordered else None
    top = (
        pl.when(best > 0).then(
            pl.coalesce(
                [pl.when(pl.col(f"_v{i}") == best).then(pl.lit(c)) for i, c in enumerate(ordered)]
            )
        )
        if best is not None
        else pl.lit(None, pl.String)
    )
    shares = [_ratio(f"_v{i}", "n_views").alias(share_column(c)) for i, c in enumerate(ordered)]
    return (
        per_user.with_columns(
            _ratio("revenue", "n_purchases").alias("avg_order_value"),
            _ratio("n_carts", "n_views").alias("view_to_cart"),
            _ratio("n_purchase_sessions", "n_sessions").alias("purchase_session_rate"),
            (
                pl.when(pl.col("_cart_sessions") > 0)
                .then(1.0 - pl.col("_cart_buy_sessions") / pl.col("_cart_sessions"))
                .otherwise(0.0)
            ).alias("cart_abandon_rate"),
            _ratio("n_events", "n_sessions").alias("events_per_session"),
            days("_last_ts").alias("recency_days"),
            days("_first_ts").alias("tenure_days"),
            top.cast(pl.String).alias("top_category"),
            _ratio("n_purchases", "n_carts").alias("cart_to_purchase"),
            _ratio("n_removes", "n_carts").alias("remove_rate"),
            pl.col("avg_view_price", "price_index").fill_null(0.0),
            *shares,
        )
        .select(
            "user_id",
            *CORE_FEATURES,
            *EXTRA_FEATURES,
            *(share_column(c) for c in ordered),
            *(agg.meta.output_name() for agg in extra_aggs),
        )
        .sort("user_id")
    )
