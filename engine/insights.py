"""Insights an analyst takes to a meeting, each a lazy query with a written definition (small
per-user or per-product tables they need are read while the plan is built).

All inputs are validated events (contract schema, sorted by (user_id, ts)); ``segments`` is a
frame of user_id, segment, segment_name (``Segmentation.assignments``).
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from sklearn.metrics import adjusted_rand_score

from engine.features import DEFAULT_SESSION_GAP, dense_lookup, sessionize

DEFAULT_CONVERSION_WINDOW = dt.timedelta(days=7)
STAGES = ("view", "add_to_cart", "purchase")
ALL = "all users"
NO_CATEGORY = "(none)"


def _with_segment(frame: pl.LazyFrame, segments: pl.LazyFrame | None) -> pl.LazyFrame:
    """Add ``segment_name`` (an Enum: grouped as integers; the tables cast it back to
    String) to rows with a user_id; rows of users without a segment are dropped.

    Dense user ids are looked up (``dense_lookup``) instead of joined: the segments table
    (one row per user) is read while the plan is built.
    """
    if segments is None:
        return frame.with_columns(pl.lit(ALL).alias("segment_name"))
    table = segments.select("user_id", "segment_name").collect()
    names = table["segment_name"].cast(pl.Enum(table["segment_name"].unique().sort()))
    lookup = dense_lookup(table["user_id"], names, pl.col("user_id"))
    if lookup is None:
        return frame.join(table.lazy(), on="user_id", how="inner")
    return frame.with_columns(lookup.alias("segment_name")).drop_nulls("segment_name")


def user_funnel(
    events: pl.LazyFrame, window: dt.timedelta = DEFAULT_CONVERSION_WINDOW
) -> pl.LazyFrame:
    """Per user: reached view, add_to_cart, purchase (booleans).

    A user reaches view with any view; add_to_cart with an add_to_cart at or after the first
    view and at most ``window`` later; purchase with a purchase at or after that first
    qualifying add_to_cart and at most ``window`` later.
    """
    ts, kind = pl.col("ts"), pl.col("event_type")
    # Every user and the first view, in one pass, read here while the plan is built (one row
    # per user): the cart stage and the result both use it, and a lazy plan computed it
    # twice besides a pass for the users (1.6 s instead of 2.8 s at 50M events).
    users = (
        events.group_by("user_id")
        .agg(pl.when(kind == "view").then(ts).min().alias("first_view"))
        .collect(engine="streaming")
        .lazy()
    )
    # The cart and purchase stages look at those rows only (a few % of the log).
    later = events.filter(kind.is_in(["add_to_cart", "purchase"])).select(
        "user_id", "ts", "event_type"
    )
    first_cart = (
        later.filter(kind == "add_to_cart")
        .join(users, on="user_id")
        .filter(ts >= pl.col("first_view"))
        .group_by("user_id")
        .agg(ts.min().alias("first_cart"), pl.col("first_view").first())
        .filter(pl.col("first_cart") - pl.col("first_view") <= window)
    )
    first_purchase = (
        later.filter(kind == "purchase")
        .join(first_cart, on="user_id")
        .filter(ts >= pl.col("first_cart"))
        .group_by("user_id")
        .agg(ts.min().alias("first_purchase"), pl.col("first_cart").first())
        .filter(pl.col("first_purchase") - pl.col("first_cart") <= window)
    )
    return (
        users.join(first_cart.select("user_id", "first_cart"), on="user_id", how="left")
        .join(first_purchase.select("user_id", "first_purchase"), on="user_id", how="left")
        .select(
            "user_id",
            pl.col("first_view").is_not_null().alias("view"),
            pl.col("first_cart").is_not_null().alias("add_to_cart"),
            pl.col("first_purchase").is_not_null().alias("purchase"),
        )
    )


def _stage_table(flags: pl.LazyFrame, unit: str) -> pl.LazyFrame:
    """Long table: segment_name, stage, <unit>, share of the previous stage and of the first."""
    counts = (
        flags.group_by("segment_name")
        .agg(pl.col(s).sum() for s in STAGES)
        .with_columns(pl.col("segment_name").cast(pl.String))
    )
    long = counts.unpivot(index="segment_name", variable_name="stage", value_name=unit)
    order = pl.col("stage").replace_strict({s: i for i, s in enumerate(STAGES)})
    long = long.with_columns(order.alias("step")).sort("segment_name", "step")
    previous = pl.col(unit).shift(1).over("segment_name")
    first = pl.col(unit).first().over("segment_name")
    return long.with_columns(
        (pl.col(unit) / previous).fill_null(1.0).alias("of_previous"),
        (pl.col(unit) / first).alias("of_first"),
    ).with_columns(pl.col("of_previous", "of_first").fill_nan(0.0))


def funnel(
    events: pl.LazyFrame,
    segments: pl.LazyFrame | None = None,
    window: dt.timedelta = DEFAULT_CONVERSION_WINDOW,
) -> pl.LazyFrame:
    """User funnel view -> add_to_cart -> purchase per segment (see ``user_funnel``)."""
    return _stage_table(_with_segment(user_funnel(events, window), segments), "users")


def _session_flags(events: pl.LazyFrame, kinds: dict[str, str]) -> pl.LazyFrame:
    """Per session's last row: did the session hold an event of each kind? (``kinds`` maps an
    event type to the boolean column to add; false on every other row.)

    Assumes ``sessionize``'s flags. Running counts, not a group-by per session: ``_n`` counts
    the kind's events so far in the whole frame, ``_base`` is ``_n`` just before the session
    started (forward-filled from the session's first row), so ``_n > _base`` at a session's
    last row means the session held one.
    """
    running, bases, flags = [], [], []
    for i, (kind, name) in enumerate(kinds.items()):
        count, hit, base = f"_n{i}", f"_hit{i}", f"_base{i}"
        is_kind = (pl.col("event_type") == kind).cast(pl.UInt32)
        running += [is_kind.cum_sum().alias(count), is_kind.alias(hit)]
        bases.append(
            pl.when(pl.col("new_session"))
            .then(pl.col(count) - pl.col(hit))
            .forward_fill()
            .alias(base)
        )
        flags.append((pl.col("last_in_session") & (pl.col(count) > pl.col(base))).alias(name))
    return events.with_columns(running).with_columns(bases).with_columns(flags)


def session_funnel(
    events: pl.LazyFrame,
    segments: pl.LazyFrame | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
) -> pl.LazyFrame:
    """Session funnel: sessions with a view; with a view and a cart; with all three.

    One row per session (its last event's), flagged from running counts: no group-by over
    sessions, whose state would grow with the log.
    """
    sessions = (
        _session_flags(sessionize(events, session_gap), {s: s for s in STAGES})
        .filter(pl.col("last_in_session"))
        .select(
            "user_id",
            pl.col("view"),
            (pl.col("view") & pl.col("add_to_cart")).alias("add_to_cart"),
            (pl.col("view") & pl.col("add_to_cart") & pl.col("purchase")).alias("purchase"),
        )
    )
    return _stage_table(_with_segment(sessions, segments), "sessions")


def category_preference(
    events: pl.LazyFrame, products: pl.LazyFrame, segments: pl.LazyFrame
) -> pl.LazyFrame:
    """Per segment and category: views, share of the segment's views, and lift.

    lift = share in the segment / share among all users' views (1 = no preference). Views
    of products without a category (or missing from ``products``) count as "(none)".
    """
    table = products.select("product_id", "category").collect()
    category = table["category"].fill_null(NO_CATEGORY)
    category = category.cast(
        pl.Enum(pl.concat([category, pl.Series([NO_CATEGORY])]).unique().sort())
    )
    views = events.filter(pl.col("event_type") == "view").select("user_id", "product_id")
    lookup = dense_lookup(table["product_id"], category, pl.col("product_id"), NO_CATEGORY)
    if lookup is None:  # sparse or signed ids: a join
        views = views.join(table.lazy(), on="product_id", how="left").with_columns(
            pl.col("category").fill_null(NO_CATEGORY)
        )
    else:
        views = views.with_columns(lookup.alias("category"))
    per_segment = (
        _with_segment(views, segments)
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


def persona_agreement(segments: pl.DataFrame, truth: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Adjusted Rand index between segments and planted personas, and the contingency table."""
    joined = segments.join(truth, on="user_id", how="inner")
    # Integer codes: scikit-learn would sort the persona strings as Python objects (3.5x
    # slower for 2.75M users).
    personas = joined["persona"].rank("dense").to_numpy()
    ari = float(adjusted_rand_score(personas, joined["segment"].to_numpy()))
    table = (
        joined.group_by("segment", "segment_name", "persona")
        .len()
        .pivot(on="persona", index=["segment", "segment_name"], values="len", sort_columns=True)
        .fill_null(0)
        .sort("segment")
    )
    return ari, table
