"""Funnels: per user (view -> add_to_cart -> purchase within a window) and per session."""

from __future__ import annotations

import datetime as dt

import polars as pl

from engine.features.sessions import DEFAULT_SESSION_GAP, sessionize
from engine.insights.common import with_segment

DEFAULT_CONVERSION_WINDOW = dt.timedelta(days=7)
STAGES = ("view", "add_to_cart", "purchase")


def first_views(events: pl.LazyFrame) -> pl.LazyFrame:
    """Every user and the time of their first view (null without a view): one row per user.

    Collect it once at the edge and pass it to ``user_funnel`` (and ``funnel``): the cart
    stage and the result both read it, and a lazy plan would compute it twice.
    """
    kind, ts = pl.col("event_type"), pl.col("ts")
    return events.group_by("user_id").agg(
        pl.when(kind == "view").then(ts).min().alias("first_view")
    )


def user_funnel(
    events: pl.LazyFrame,
    window: dt.timedelta = DEFAULT_CONVERSION_WINDOW,
    first_view: pl.DataFrame | pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Per user: reached view, add_to_cart, purchase (booleans).

    ``first_view`` is ``first_views(events)``, collected at the edge (computed lazily when
    not given).

    A user reaches view with any view; add_to_cart with an add_to_cart at or after the first
    view and at most ``window`` later; purchase with a purchase at or after that first
    qualifying add_to_cart and at most ``window`` later.
    """
    ts, kind = pl.col("ts"), pl.col("event_type")
    users = (first_views(events) if first_view is None else first_view).lazy()
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
    segments: pl.DataFrame | pl.LazyFrame | None = None,
    window: dt.timedelta = DEFAULT_CONVERSION_WINDOW,
    first_view: pl.DataFrame | pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """User funnel view -> add_to_cart -> purchase per segment (see ``user_funnel``;
    ``first_view`` is ``first_views(events)``, computed lazily when not given)."""
    flags = user_funnel(events, window, first_view)
    return _stage_table(with_segment(flags, segments), "users")


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
    segments: pl.DataFrame | pl.LazyFrame | None = None,
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
    return _stage_table(with_segment(sessions, segments), "sessions")
