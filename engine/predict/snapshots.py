"""Point-in-time snapshots and labels: pure lazy queries.

A snapshot at cutoff C describes every user from the events strictly before C (an event at
exactly C is the first moment of the label window, so it is not known at C); its label
comes from the window [C, C + H). featuretools counts an event at the cutoff as known by
default, which leaks exactly that event into the features; here the strict filter is the
first thing the query does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import polars as pl

from engine.features import CORE_FEATURES, EXTRA_FEATURES, share_column, user_features
from engine.features.behaviour import DAYS_PER_US, US_PER_DAY
from engine.features.sessions import DEFAULT_SESSION_GAP

Target = Literal["conversion", "churn"]
TARGETS: tuple[Target, ...] = ("conversion", "churn")
DEFAULT_WINDOWS: tuple[int, ...] = (7, 14, 28)
# The numeric behavioural features of engine.features (top_category is a name; its
# information is in the share_<category> columns). price_index and the shares need products.
BASE_FEATURES: tuple[str, ...] = tuple(
    f for f in (*CORE_FEATURES, *EXTRA_FEATURES) if f not in ("top_category", "price_index")
)

# Days since the last and the first purchase (null without one): with n_purchase_sessions,
# BG/NBD's sufficient statistics (recency and age of the customer).
PURCHASE_AGES = ("days_since_purchase", "days_since_first_purchase")


def window_columns(windows: Sequence[int]) -> list[str]:
    """The names of the recency-window features, in the order ``snapshot`` writes them."""
    return [f"{kind}_{w}d" for w in windows for kind in ("events", "purchases", "active_days")]


def snapshot_columns(windows: Sequence[int], categories: Sequence[str] = ()) -> list[str]:
    """Every model feature of a snapshot, in column order (after user_id)."""
    with_products = ["price_index", *(share_column(c) for c in sorted(categories))]
    return [
        *BASE_FEATURES,
        *(with_products if categories else []),
        *window_columns(windows),
        *PURCHASE_AGES,
    ]


def snapshot(
    events: pl.LazyFrame,
    cutoff: dt.datetime,
    *,
    products: pl.DataFrame | pl.LazyFrame | None = None,
    categories: Sequence[str] = (),
    windows: Sequence[int] = DEFAULT_WINDOWS,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
) -> pl.LazyFrame:
    """One row per user with an event strictly before ``cutoff``: the behavioural features
    as of the cutoff, then events, purchases and active days (of the 24-hour periods counted
    back from the cutoff) in each of the last ``windows`` days, and days since the last and
    the first purchase (null without one). With products and categories, also the price
    index and the view share of each category.

    Args:
        events: validated events sorted by (user_id, ts) (any later events are ignored).
        cutoff: the point in time; only events with ts < cutoff are read.
        products, categories: as in ``engine.features.user_features``.
        windows: window lengths in whole days.
        session_gap: as in ``engine.features.user_features``.

    Returns:
        LazyFrame: user_id, then ``snapshot_columns(windows, categories)``; sorted by user_id.
    """
    if not windows or min(windows) <= 0:
        raise ValueError(f"windows must be whole days > 0, got {list(windows)}")
    known = events.filter(pl.col("ts") < cutoff)
    ts, kind = pl.col("ts"), pl.col("event_type")
    aggs: list[pl.Expr] = []
    # Days are the 24-hour periods counted back from the cutoff (0: the last 24 hours), so a
    # w-day window holds exactly w of them whatever the time of day of the cutoff.
    days_back = (
        pl.lit(cutoff, pl.Datetime("us", "UTC")) - ts
    ).dt.total_microseconds() // US_PER_DAY
    for w in windows:
        recent = ts >= cutoff - dt.timedelta(days=w)
        day = pl.when(recent).then(days_back)  # null outside the window, then taken back out
        aggs += [
            recent.sum().alias(f"events_{w}d"),
            (recent & (kind == "purchase")).sum().alias(f"purchases_{w}d"),
            (day.n_unique() - day.is_null().any().cast(pl.UInt32)).alias(f"active_days_{w}d"),
        ]
    bought = pl.when(kind == "purchase").then(ts)
    aggs += [bought.max().alias("_last_purchase"), bought.min().alias("_first_purchase")]
    features = user_features(
        known,
        products if categories else None,
        categories=categories,
        as_of=cutoff,
        session_gap=session_gap,
        extra_aggs=aggs,
    )
    reference = pl.lit(cutoff, pl.Datetime("us", "UTC"))
    days = lambda since: (reference - pl.col(since)).dt.total_microseconds() * DAYS_PER_US  # noqa: E731
    return features.with_columns(
        days("_last_purchase").alias("days_since_purchase"),
        days("_first_purchase").alias("days_since_first_purchase"),
    ).select("user_id", *snapshot_columns(windows, categories))


def with_labels(
    snapshot: pl.LazyFrame,
    events: pl.LazyFrame,
    cutoff: dt.datetime,
    horizon: dt.timedelta,
    target: Target,
) -> pl.LazyFrame:
    """``snapshot`` with a Boolean ``label`` from the window [cutoff, cutoff + horizon).

    conversion: at least one purchase in the window.
    churn: no event in the window (the snapshot should hold only the users active in the
    ``horizon`` before the cutoff; see ``at_risk``).
    """
    window = events.filter((pl.col("ts") >= cutoff) & (pl.col("ts") < cutoff + horizon))
    seen = window.group_by("user_id").agg(
        (pl.col("event_type") == "purchase").any().alias("_bought")
    )
    bought = pl.col("_bought")
    label = bought.fill_null(False) if target == "conversion" else bought.is_null()
    return (
        snapshot.join(seen, on="user_id", how="left", maintain_order="left")
        .with_columns(label.alias("label"))
        .drop("_bought")
    )


def at_risk(horizon_days: int) -> pl.Expr:
    """Churn's population: the users with an event in the ``horizon_days`` before the cutoff."""
    return pl.col(f"events_{horizon_days}d") > 0
