"""Recency, frequency, T and monetary value per customer, as lifetimes defines them.

``rfm`` is lifetimes' ``summary_data_from_transaction_data`` as one lazy Polars query:

* purchases are truncated to their period (UTC day, Monday-started week or hour); those in a
  period after ``as_of``'s are ignored;
* one purchase counts per period (its prices summed): frequency = purchase periods - 1;
* recency = last - first purchase period, T = ``as_of``'s period - first purchase period, in
  periods;
* monetary_value = mean of the per-period sums except the first (0 for one-time buyers).
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
    purchases = events.filter(pl.col("event_type").cast(pl.String) == "purchase").select(
        "user_id", start=pl.col("ts").dt.truncate(every), price=pl.col("price").cast(pl.Float64)
    )
    if as_of is None:
        end = purchases.select(pl.col("start").max())
    else:
        stamp = pl.lit(as_of).cast(pl.Datetime("us", "UTC")).dt.truncate(every)
        end = purchases.select(stamp.alias("start")).head(1)
    # Rows in one canonical order first, so that float sums do not depend on the input's.
    periods = (
        purchases.join(end.rename({"start": "end"}), how="cross")
        .filter(pl.col("start") <= pl.col("end"))
        .sort("user_id", "start", "price")
        .group_by("user_id", "start", maintain_order=True)
        .agg(pl.col("price").sum(), pl.col("end").first())
    )
    unit = length.total_seconds()
    in_periods = lambda delta: delta.dt.total_microseconds() / (unit * 1e6)  # noqa: E731
    first = pl.col("start").min()
    return (
        periods.group_by("user_id", maintain_order=True)
        .agg(
            frequency=(pl.len() - 1).cast(pl.Float64),
            recency=in_periods(pl.col("start").max() - first),
            T=in_periods(pl.col("end").first() - first),
            monetary_value=pl.col("price").filter(pl.col("start") != first).mean().fill_null(0.0),
        )
        .sort("user_id")
    )
