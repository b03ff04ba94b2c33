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


def _collect_sum(queries: list[pl.LazyFrame], keys: list[str], value: str) -> pl.DataFrame:
    """Collect each part's counts and add them up."""
    frames = [query.collect() for query in queries]
    return pl.concat(frames).group_by(keys).agg(pl.col(value).sum())


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
    period, start, mode = config.period, config.start_event, config.mode
    # The events are read once per part (a streaming group-by into one row per user and
    # active period); every table below comes from those small tables.
    parts = [user_periods(p, period).collect(engine="streaming").lazy() for p in parts]
    retained = [
        retention_counts(
            p,
            period,
            return_event=config.return_event,
            criterion=config.criterion,
            start_event=start,
            mode=mode,
        )
        for p in parts
    ]
    counts = _collect_sum(retained, ["cohort", "period"], "users")
    retention = retention_table(counts, period, as_of)
    spent = [revenue_counts(p, period, start_event=start, mode=mode) for p in parts]
    revenue = _collect_sum(spent, ["cohort", "period"], "revenue")
    revenue = (
        retention.select("cohort", "period", "cohort_users", "complete")
        .join(revenue, on=["cohort", "period"], how="left")
        .with_columns(pl.col("revenue").fill_null(0.0))
        .with_columns((pl.col("revenue") / pl.col("cohort_users")).alias("revenue_per_user"))
        .sort("cohort", "period")
    )
    lifecycle = lifecycle_table(
        _collect_sum(
            [lifecycle_counts(p, period) for p in parts], ["period_start", "status"], "users"
        ),
        period,
        _last_period(as_of, period),
    )
    by_segment = None
    if segments is not None:
        lookup = segments.lazy().select("user_id", "segment_name")
        per_segment = [
            retention_counts(
                p,
                period,
                return_event=config.return_event,
                criterion=config.criterion,
                segments=lookup,
                start_event=start,
                mode=mode,
            )
            for p in parts
        ]
        summed = _collect_sum(per_segment, ["segment_name", "cohort", "period"], "users")
        by_segment = retention_table(summed, period, as_of)
    return CohortTables(retention, revenue, lifecycle, by_segment)


def _last_period(as_of: dt.datetime, period: Period) -> dt.date:
    return pl.select(period_start(pl.lit(as_of), period)).item()


def cohorts_stage(
    parts: list[pl.LazyFrame],
    as_of: dt.datetime,
    config: CohortsConfig,
    out: str | Path,
    segments: pl.DataFrame | None = None,
) -> CohortTables:
    """Compute the cohort tables and write ``out/retention.parquet``,
    ``revenue_retention.parquet``, ``lifecycle.parquet`` and, with segments,
    ``retention_by_segment.parquet``."""
    tables = cohort_tables(parts, as_of, config, segments)
    folder = Path(out)
    write_parquet_atomic(tables.retention, folder / "retention.parquet")
    write_parquet_atomic(tables.revenue, folder / "revenue_retention.parquet")
    write_parquet_atomic(tables.lifecycle, folder / "lifecycle.parquet")
    if tables.by_segment is not None:
        write_parquet_atomic(tables.by_segment, folder / "retention_by_segment.parquet")
    return tables
