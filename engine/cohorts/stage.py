"""The cohorts stage: retention matrices and lifecycle, collected and written atomically.

The counts are sums over users, so they are computed part by part over user-disjoint parts
of the events (the user ranges of the native layout, or its buckets) and added: memory
follows the users of one part times the periods, never the events.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import polars as pl

from engine.cohorts.lifecycle import lifecycle_counts, lifecycle_table
from engine.cohorts.retention import (
    ANY_EVENT,
    CRITERIA,
    MODES,
    PERIODS,
    Criterion,
    Mode,
    Period,
    period_start,
    retention_counts,
    retention_table,
    revenue_counts,
    user_periods,
)
from engine.exceptions import ConfigError
from engine.io.atomic import write_parquet_atomic
from engine.schema import EVENT_TYPES
from engine.validation import Policy, parse_policy


@dataclass(frozen=True)
class CohortsConfig:
    """What retention to measure (validated once, here); see ``engine.cohorts.retention``.

    Attributes:
        period: "day", "week" (starting Monday) or "month", in UTC.
        start_event: "any" (the first event makes the cohort) or an event type.
        return_event: "any" or an event type that counts as coming back.
        criterion: "on" (returned in period n) or "on_or_after" (in n or later).
        mode: "first_time" (one cohort per user) or "recurring" (a cohort per start).
        on_bad_rows: the features stage's policy: bad rows are dropped unless "error".
    """

    period: Period = "week"
    start_event: str = ANY_EVENT
    return_event: str = ANY_EVENT
    criterion: Criterion = "on"
    mode: Mode = "first_time"
    on_bad_rows: Policy = "error"

    def __post_init__(self) -> None:
        kinds = (ANY_EVENT, *EVENT_TYPES)
        for name, value, allowed in (
            ("period", self.period, PERIODS),
            ("start_event", self.start_event, kinds),
            ("return_event", self.return_event, kinds),
            ("criterion", self.criterion, CRITERIA),
            ("mode", self.mode, MODES),
        ):
            if value not in allowed:
                raise ConfigError.out_of_range(name, f"one of {allowed}", value)
        parse_policy(self.on_bad_rows)

    @classmethod
    def parse(
        cls,
        period: str,
        start_event: str,
        return_event: str,
        criterion: str,
        mode: str,
        on_bad_rows: str,
    ) -> CohortsConfig:
        """From command-line values (validated by the constructor)."""
        return cls(
            cast(Period, period),
            start_event,
            return_event,
            cast(Criterion, criterion),
            cast(Mode, mode),
            parse_policy(on_bad_rows),
        )


@dataclass
class CohortTables:
    """retention (cohort x period), revenue retention, lifecycle, and retention by segment
    (None without segments)."""

    retention: pl.DataFrame
    revenue: pl.DataFrame
    lifecycle: pl.DataFrame
    by_segment: pl.DataFrame | None


@dataclass
class PartCounts:
    """The additive counts of one user-disjoint part: what a task returns."""

    retention: pl.DataFrame
    revenue: pl.DataFrame
    lifecycle: pl.DataFrame
    by_segment: pl.DataFrame | None


def part_counts(
    part: pl.LazyFrame, config: CohortsConfig, segments: pl.DataFrame | None = None
) -> PartCounts:
    """The counts of the users in ``part`` (validated events, all of its users' events).

    The events are read once (a streaming group-by into one row per user and active
    period); every count comes from that small table. The unit of work of the serial loop
    over parts and of the Dask tasks alike.
    """
    period, start, mode = config.period, config.start_event, config.mode
    periods = user_periods(part, period).collect(engine="streaming").lazy()
    retained = retention_counts(
        periods,
        period,
        return_event=config.return_event,
        criterion=config.criterion,
        start_event=start,
        mode=mode,
    )
    spent = revenue_counts(periods, period, start_event=start, mode=mode)
    by_segment = None
    if segments is not None:
        by_segment = retention_counts(
            periods,
            period,
            return_event=config.return_event,
            criterion=config.criterion,
            segments=segments.lazy().select("user_id", "segment_name"),
            start_event=start,
            mode=mode,
        )
    found = pl.collect_all(
        [retained, spent, lifecycle_counts(periods, period)]
        + ([by_segment] if by_segment is not None else [])
    )
    return PartCounts(found[0], found[1], found[2], found[3] if len(found) > 3 else None)


def _sum(frames: list[pl.DataFrame], keys: list[str], value: str) -> pl.DataFrame:
    return pl.concat(frames).group_by(keys).agg(pl.col(value).sum())


def tables_from_counts(
    counts: list[PartCounts], as_of: dt.datetime, config: CohortsConfig
) -> CohortTables:
    """The cohort tables from the counts of every part, added up."""
    period = config.period
    retention = retention_table(
        _sum([c.retention for c in counts], ["cohort", "period"], "users"), period, as_of
    )
    revenue = (
        retention.select("cohort", "period", "cohort_users", "complete")
        .join(
            _sum([c.revenue for c in counts], ["cohort", "period"], "revenue"),
            on=["cohort", "period"],
            how="left",
        )
        .with_columns(pl.col("revenue").fill_null(0.0))
        .with_columns((pl.col("revenue") / pl.col("cohort_users")).alias("revenue_per_user"))
        .sort("cohort", "period")
    )
    lifecycle = lifecycle_table(
        _sum([c.lifecycle for c in counts], ["period_start", "status"], "users"),
        period,
        _last_period(as_of, period),
    )
    by_segment = None
    segment_counts = [c.by_segment for c in counts if c.by_segment is not None]
    if segment_counts:
        summed = _sum(segment_counts, ["segment_name", "cohort", "period"], "users")
        by_segment = retention_table(summed, period, as_of)
    return CohortTables(retention, revenue, lifecycle, by_segment)


def cohort_tables(
    parts: list[pl.LazyFrame],
    as_of: dt.datetime,
    config: CohortsConfig,
    segments: pl.DataFrame | None = None,
) -> CohortTables:
    """The cohort tables from validated events in user-disjoint ``parts``.

    Args:
        parts: validated events up to ``as_of``, each holding all events of its users.
        as_of: the end of the observed window (the last event).
        config: see CohortsConfig.
        segments: user_id, segment_name (for retention by segment).
    """
    counts = [part_counts(part, config, segments) for part in parts]
    return tables_from_counts(counts, as_of, config)


def _last_period(as_of: dt.datetime, period: Period) -> dt.date:
    return pl.select(period_start(pl.lit(as_of), period)).item()


def write_cohorts(tables: CohortTables, out: str | Path) -> None:
    """``out/retention.parquet``, ``revenue_retention.parquet``, ``lifecycle.parquet`` and,
    with segments, ``retention_by_segment.parquet``."""
    folder = Path(out)
    write_parquet_atomic(tables.retention, folder / "retention.parquet")
    write_parquet_atomic(tables.revenue, folder / "revenue_retention.parquet")
    write_parquet_atomic(tables.lifecycle, folder / "lifecycle.parquet")
    if tables.by_segment is not None:
        write_parquet_atomic(tables.by_segment, folder / "retention_by_segment.parquet")


def cohorts_stage(
    parts: list[pl.LazyFrame],
    as_of: dt.datetime,
    config: CohortsConfig,
    out: str | Path,
    segments: pl.DataFrame | None = None,
) -> CohortTables:
    """Compute the cohort tables part by part and write them under ``out``."""
    tables = cohort_tables(parts, as_of, config, segments)
    write_cohorts(tables, out)
    return tables
