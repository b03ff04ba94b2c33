"""Retention by cohort: who comes back, period by period (PostHog's and Mixpanel's definitions).

Definitions (every time in UTC):

* a **period** is a day, a week starting on Monday, or a calendar month; ``period_start`` is
  its first day;
* a user's **cohort** is the period of their first event, or of their first *start event*
  (for example their first purchase) when one is given; users who never did it are in no
  cohort;
* **period n** of a cohort is the n-th period after it (the cohort's own period is 0);
* a user is **retained in period n >= 1** when they did the *return event* (any event by
  default, or purchase) in period n (criterion ``on``), or in period n or any later period
  (criterion ``on_or_after``). Period 0 is the cohort itself: rate 1 by definition;
* **first-time** retention (the default) counts each user in one cohort, their first;
  **recurring** retention puts a user in the cohort of *every* period in which they did the
  start event, and measures returns from each of them;
* **revenue retention**: the purchase revenue of a cohort's users in period n, per cohort
  user;
* a cell is **complete** when its period ended at or before ``as_of`` (the last event): the
  current period's figures can still grow.

Every function here is a pure lazy query; the edge (``engine.cohorts.stage``) collects. The
events are read once, into ``user_periods`` (one row per user and active period: counts per
event type and revenue); everything else is computed from that table, whose size follows
users times periods, not events.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import polars as pl

from engine.schema import EVENT_TYPES

Period = Literal["day", "week", "month"]
PERIODS: tuple[str, ...] = ("day", "week", "month")
Criterion = Literal["on", "on_or_after"]
CRITERIA: tuple[str, ...] = ("on", "on_or_after")
Mode = Literal["first_time", "recurring"]
MODES: tuple[str, ...] = ("first_time", "recurring")
ANY_EVENT = "any"
INTERVALS: dict[str, str] = {"day": "1d", "week": "1w", "month": "1mo"}  # Polars durations


def period_start(ts: pl.Expr, period: Period) -> pl.Expr:
    """The first day (Date, UTC) of the period that holds ``ts``; weeks start on Monday."""
    return ts.dt.truncate(INTERVALS[period]).dt.date()


def periods_between(start: pl.Expr, later: pl.Expr, period: Period) -> pl.Expr:
    """Whole periods from the period starting ``start`` to the one starting ``later``."""
    if period == "month":
        months = lambda d: d.dt.year().cast(pl.Int32) * 12 + d.dt.month().cast(pl.Int32)  # noqa: E731
        return months(later) - months(start)
    days = (later - start).dt.total_days().cast(pl.Int32)
    return days if period == "day" else days // 7


def next_period(start: pl.Expr, period: Period) -> pl.Expr:
    """The first day of the period after the one starting ``start``."""
    return start.dt.offset_by(INTERVALS[period])


def _in_cohorts(
    members: pl.LazyFrame, segments: pl.LazyFrame | None
) -> tuple[pl.LazyFrame, list[str]]:
    """The cohort members, with their segment when ``segments`` are given, and the keys
    that the counts are grouped by."""
    if segments is None:
        return members, ["cohort"]
    seg = segments.select("user_id", pl.col("segment_name").cast(pl.String))
    return members.join(seg, on="user_id", how="inner"), ["segment_name", "cohort"]


def user_periods(events: pl.LazyFrame, period: Period) -> pl.LazyFrame:
    """One row per user and period with any event: user_id, period_start, the count of each
    event type (``n_<type>``) and the purchase revenue (Float64)."""
    kind = pl.col("event_type")
    return events.group_by("user_id", period_start(pl.col("ts"), period).alias("period_start")).agg(
        *((kind == k).sum().alias(f"n_{k}") for k in EVENT_TYPES),
        pl.when(kind == "purchase").then(pl.col("price").cast(pl.Float64)).sum().alias("revenue"),
    )


def active_periods(periods: pl.LazyFrame, kind: str = ANY_EVENT) -> pl.LazyFrame:
    """user_id, period_start: each period in which the user did ``kind`` (from
    ``user_periods``)."""
    if kind != ANY_EVENT:
        periods = periods.filter(pl.col(f"n_{kind}") > 0)
    return periods.select("user_id", "period_start")


def cohorts(
    periods: pl.LazyFrame, start_event: str = ANY_EVENT, mode: Mode = "first_time"
) -> pl.LazyFrame:
    """user_id, cohort: the period of each user's first start event (first-time), or of
    every period with one (recurring); from ``user_periods``."""
    starts = active_periods(periods, start_event).rename({"period_start": "cohort"})
    if mode == "recurring":
        return starts
    return starts.group_by("user_id").agg(pl.col("cohort").min())


def retention_counts(
    periods: pl.LazyFrame,
    period: Period,
    *,
    start_event: str = ANY_EVENT,
    return_event: str = ANY_EVENT,
    criterion: Criterion = "on",
    mode: Mode = "first_time",
    segments: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Retained users per (cohort, period n >= 1), and the cohort sizes at period 0, from
    ``user_periods`` of the events with the same ``period``; with
    ``segments`` (user_id, segment_name) per segment too. Additive over user-disjoint
    partitions of the events (so it can be computed bucket by bucket and summed).

    Returns:
        LazyFrame of [segment_name,] cohort (Date), period (Int32), users (UInt32).
    """
    members, keys = _in_cohorts(cohorts(periods, start_event, mode), segments)
    returns = active_periods(periods, return_event)
    later = (
        members.join(returns, on="user_id", how="inner")
        .with_columns(periods_between(pl.col("cohort"), pl.col("period_start"), period).alias("n"))
        .filter(pl.col("n") >= 1)
    )
    if criterion == "on":
        retained = later.group_by(*keys, "n").agg(pl.len().alias("users"))
    else:  # on or after: retained in every period up to their last return
        last = later.group_by("user_id", *keys).agg(pl.col("n").max().alias("last"))
        reached = last.group_by(*keys, "last").agg(pl.len().alias("users"))
        retained = reached.select(
            *keys, pl.int_ranges(1, pl.col("last") + 1).alias("n"), "users"
        ).explode("n")
        retained = retained.group_by(*keys, "n").agg(pl.col("users").sum())
    sizes = members.group_by(*keys).agg(pl.len().alias("users")).with_columns(pl.lit(0).alias("n"))
    columns = [*keys, pl.col("n").cast(pl.Int32).alias("period"), pl.col("users").cast(pl.UInt32)]
    return pl.concat([sizes.select(columns), retained.select(columns)])


def retention_table(counts: pl.DataFrame, period: Period, as_of: dt.datetime) -> pl.DataFrame:
    """The retention matrix from (summed) ``retention_counts``: cohort, period,
    cohort_users, users, rate, complete; every cell of a cohort up to the last period with
    data (missing cells are 0 returns)."""
    keys = [c for c in ("segment_name", "cohort") if c in counts.columns]
    counts = counts.group_by(*keys, "period").agg(pl.col("users").sum())
    sizes = counts.filter(pl.col("period") == 0).select(
        *keys, pl.col("users").alias("cohort_users")
    )
    last_day = as_of.date()
    horizon = sizes.with_columns(
        periods_between(pl.col("cohort"), pl.lit(last_day), period).alias("last")
    ).with_columns(pl.int_ranges(0, pl.col("last") + 1).alias("period"))
    grid = horizon.explode("period").with_columns(pl.col("period").cast(pl.Int32))
    table = grid.join(counts, on=[*keys, "period"], how="left").with_columns(
        pl.col("users").fill_null(0).cast(pl.UInt32)
    )
    start = (
        pl.col("cohort").dt.offset_by(pl.format("{}mo", pl.col("period")))
        if period == "month"
        else pl.col("cohort") + pl.duration(days=pl.col("period") * (7 if period == "week" else 1))
    )
    end = next_period(start, period)
    return table.select(
        *keys,
        "period",
        "cohort_users",
        "users",
        (pl.col("users") / pl.col("cohort_users")).alias("rate"),
        _ended_by(end, as_of).alias("complete"),
    ).sort(*keys, "period")


def _ended_by(end: pl.Expr, as_of: dt.datetime) -> pl.Expr:
    """Whether a period ending (exclusive) at the midnight ``end`` is over at ``as_of``."""
    return end.cast(pl.Datetime("us", "UTC")) <= pl.lit(as_of, dtype=pl.Datetime("us", "UTC"))


def revenue_counts(
    periods: pl.LazyFrame,
    period: Period,
    *,
    start_event: str = ANY_EVENT,
    mode: Mode = "first_time",
    segments: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Purchase revenue of each cohort's users per period n >= 0, from ``user_periods``
    (additive over partitions).

    Returns:
        LazyFrame of [segment_name,] cohort, period, revenue (Float64).
    """
    members, keys = _in_cohorts(cohorts(periods, start_event, mode), segments)
    spent = periods.filter(pl.col("n_purchase") > 0).select("user_id", "period_start", "revenue")
    return (
        members.join(spent, on="user_id", how="inner")
        .with_columns(periods_between(pl.col("cohort"), pl.col("period_start"), period).alias("n"))
        .filter(pl.col("n") >= 0)
        .group_by(*keys, "n")
        .agg(pl.col("revenue").sum())
        .select(*keys, pl.col("n").cast(pl.Int32).alias("period"), "revenue")
    )
