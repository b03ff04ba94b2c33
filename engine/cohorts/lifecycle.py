"""Lifecycle: per period, how many users are new, returning, resurrecting or dormant
(PostHog's definitions).

For each period P (a day, a week starting Monday, or a month; UTC), with "active" meaning at
least one event in the period:

* **new**: active in P, and P is the period of the user's first event in the log (a users
  table's signup time is not used: a signup without events is not a user of this log, and
  an event log that starts mid-history would call every old user new once either way);
* **returning**: active in P and in the period before P;
* **resurrecting**: active in P, not active in the period before, and not new;
* **dormant**: active in the period before P, not active in P (shown below zero in charts;
  counted as a positive number here).

So new + returning + resurrecting = active users of P, and returning + dormant = active
users of the period before P. Periods run from the first period with an event to the
period holding ``as_of``; the first period has no dormant users (nothing before it).
Every function here is a pure lazy query; counts are additive over user-disjoint partitions.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from engine.cohorts.retention import INTERVALS, Period, active_periods, next_period

STATUSES: tuple[str, ...] = ("new", "returning", "resurrecting", "dormant")


def lifecycle_counts(periods: pl.LazyFrame, period: Period) -> pl.LazyFrame:
    """Users per (period_start, status), from ``user_periods`` of the events with the same
    ``period``; additive over user-disjoint partitions.

    Joins of the (user, active period) pairs with themselves shifted by one period, not
    window functions over users: joins and group-bys stay on the streaming engine, and the
    state follows users times periods, never the events. Dormant users are counted in the
    period after their last active one, including one after the end of the log;
    ``lifecycle_table`` cuts that off.
    """
    active = active_periods(periods)
    first = active.group_by("user_id").agg(pl.col("period_start").min().alias("first"))
    # (user, P) for every P whose previous period the user was active in
    after_active = active.select("user_id", next_period(pl.col("period_start"), period))
    returning = active.join(after_active, on=["user_id", "period_start"], how="semi")
    status = (
        active.join(first, on="user_id")
        .join(
            returning.with_columns(pl.lit(True).alias("_back")),
            on=["user_id", "period_start"],
            how="left",
        )
        .select(
            "period_start",
            pl.when(pl.col("period_start") == pl.col("first"))
            .then(pl.lit("new"))
            .when(pl.col("_back").fill_null(False))
            .then(pl.lit("returning"))
            .otherwise(pl.lit("resurrecting"))
            .alias("status"),
        )
    )
    dormant = after_active.join(active, on=["user_id", "period_start"], how="anti").select(
        "period_start", pl.lit("dormant").alias("status")
    )
    return (
        pl.concat([status, dormant])
        .group_by("period_start", "status")
        .agg(pl.len().cast(pl.UInt32).alias("users"))
    )


def lifecycle_table(counts: pl.DataFrame, period: Period, last_period: dt.date) -> pl.DataFrame:
    """The lifecycle table from (summed) ``lifecycle_counts``: every status of every period
    from the first to ``last_period`` (the period holding as_of), 0 where none; the first
    period has no dormant row."""
    counts = counts.group_by("period_start", "status").agg(pl.col("users").sum())
    first = counts["period_start"].min()
    assert isinstance(first, dt.date)
    interval = INTERVALS[period]
    starts = pl.DataFrame({"period_start": pl.date_range(first, last_period, interval, eager=True)})
    grid = starts.join(pl.DataFrame({"status": list(STATUSES)}), how="cross")
    table = grid.join(counts, on=["period_start", "status"], how="left").with_columns(
        pl.col("users").fill_null(0).cast(pl.UInt32)
    )
    table = table.filter(~((pl.col("period_start") == first) & (pl.col("status") == "dormant")))
    order = pl.col("status").replace_strict({s: i for i, s in enumerate(STATUSES)})
    return table.with_columns(order.alias("_o")).sort("period_start", "_o").drop("_o")
