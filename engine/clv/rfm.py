"""Recency, frequency, T and monetary value per customer, as lifetimes defines them.

``rfm`` is lifetimes' ``summary_data_from_transaction_data`` as one lazy Polars query:

* purchases are truncated to their period (UTC day, Monday-started week or hour); those in a
  period after ``as_of``'s are ignored;
* one purchase counts per period (its prices summed): frequency = purchase periods - 1;
* recency = last - first purchase period, T = ``as_of``'s period - first purchase period, in
  periods;
* monetary_value = mean of the per-period sums except the first (0 for one-time buyers).

Sums are exact in millionths of the currency unit, so the answers do not depend on the
order of the rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import polars as pl

from engine.exceptions import ConfigError

Period = Literal["D", "W", "h"]
PERIODS: dict[str, tuple[str, dt.timedelta]] = {
    "D": ("1d", dt.timedelta(days=1)),
    "W": ("1w", dt.timedelta(weeks=1)),
    "h": ("1h", dt.timedelta(hours=1)),
}
RFM_COLUMNS = ("user_id", "frequency", "recency", "T", "monetary_value")
MICROS = 1_000_000


def period_length(period: str) -> dt.timedelta:
    """The length of a period ("D", "W" or "h"), with a clear error for anything else."""
    if period not in PERIODS:
        raise ConfigError.out_of_range("period", f"one of {sorted(PERIODS)}", period)
    return PERIODS[period][1]


def rfm(
    events: pl.LazyFrame, *, as_of: dt.datetime | None = None, period: Period = "D"
) -> pl.LazyFrame:
    """One row per customer (a user with a purchase up to ``as_of``'s period).

    Args:
        events: user_id, ts, event_type (the Enum or plain strings), price.
        as_of: end of the calibration window (default: the last purchase).
        period: "D" (UTC days), "W" (weeks from Monday) or "h" (hours).

    Returns:
        user_id, frequency, recency, T, monetary_value (Float64, as lifetimes), sorted by user_id.
    """
    every, length = PERIODS[period][0], period_length(period)
    purchases = events.filter(pl.col("event_type").cast(pl.String) == "purchase")
    if as_of is None:  # the last purchase's period, carried as a column (no collect here)
        purchases = purchases.with_columns(end=pl.col("ts").max().dt.truncate(every))
        end, carried = pl.col("end"), ["end"]
    else:  # a literal, so that no extra column rides through the group-bys
        end, carried = pl.lit(as_of).cast(pl.Datetime("us", "UTC")).dt.truncate(every), []
    unit = length.total_seconds() * 1e6
    periods = (
        purchases.select(
            "user_id",
            *carried,
            start=pl.col("ts").dt.truncate(every),
            # money in whole millionths: exact integer sums, the same in any row order
            micros=(pl.col("price").cast(pl.Float64) * MICROS).round().cast(pl.Int64),
        )
        .filter(pl.col("start") <= end)
        .group_by("user_id", "start")
        .agg(pl.col("micros").sum(), *(pl.col(c).first() for c in carried))
    )
    if carried:
        end = end.first()
    first = pl.col("start").min()
    return (
        periods.group_by("user_id")
        .agg(
            frequency=(pl.len() - 1).cast(pl.Float64),
            recency=(pl.col("start").max() - first).dt.total_microseconds() / unit,
            T=(end - first).dt.total_microseconds() / unit,
            # all periods' spend less the first's (a filter here would not vectorise)
            later=pl.col("micros").sum() - pl.col("micros").sort_by("start").first(),
        )
        .select(
            "user_id",
            "frequency",
            "recency",
            "T",
            monetary_value=pl.when(pl.col("frequency") > 0)
            .then(pl.col("later") / MICROS / pl.col("frequency"))
            .otherwise(0.0),
        )
        .sort("user_id")
    )
