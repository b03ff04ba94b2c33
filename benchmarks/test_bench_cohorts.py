"""Retention matrix and lifecycle: ours vs DuckDB SQL of the same definitions, same run.

Ours validates the events (every rule) and computes the weekly first-time retention matrix
and the lifecycle counts from the Parquet files; DuckDB reads the same files and runs the
SQL of ``tests/test_cohorts.py`` (its independent oracle). Quality: the retained users of
every (cohort, period) and every lifecycle count agree. Guard: ours at least
GUARD_VS_DUCKDB times DuckDB's speed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from benchmarks.conftest import Profile, best_of
from engine.cohorts import CohortsConfig, cohort_tables
from engine.io.dataset import load_dataset
from engine.validation import validate_events
from tests.test_cohorts import DUCKDB_LIFECYCLE, DUCKDB_RETENTION

GUARD_VS_DUCKDB = 1.2


def _duckdb(dataset: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.sql(f"CREATE VIEW ev AS SELECT * FROM read_parquet('{dataset}/events/*.parquet')")
    return con.sql(DUCKDB_RETENTION).pl(), con.sql(DUCKDB_LIFECYCLE).pl()


def test_cohorts_vs_duckdb(benchmark: Any, profile: Profile, dataset: Path) -> None:
    config = CohortsConfig(period="week")

    def ours() -> Any:
        events, report = validate_events(load_dataset(dataset).events)
        assert report.ts_max is not None
        return cohort_tables([events], report.ts_max, config)

    tables = benchmark.pedantic(ours, rounds=profile.rounds, warmup_rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.min
    duck_s, (retention, lifecycle) = best_of(lambda: _duckdb(dataset), profile.rounds)
    retained = tables.retention.filter(pl.col("users") > 0)
    assert retained["users"].sum() == retention["users"].sum()
    last: dt.date = tables.lifecycle["period_start"].max()
    assert (
        tables.lifecycle["users"].sum()
        == lifecycle.filter(pl.col("period_start") <= last)["users"].sum()
    )
    ratio = duck_s / ours_s
    events = int(
        pl.scan_parquet(dataset / "events" / "*.parquet").select(pl.len()).collect().item()
    )
    benchmark.extra_info.update(
        events=events,
        events_per_s=events / ours_s,
        duckdb_events_per_s=events / duck_s,
        ratio_vs_duckdb=ratio,
        cohorts=retention["cohort"].n_unique(),
    )
    print(
        f"\ncohorts: {events:,} events, ours {events / ours_s / 1e6:.1f} M/s, DuckDB "
        f"{events / duck_s / 1e6:.1f} M/s ({ratio:.2f}x)"
    )
    assert ratio >= GUARD_VS_DUCKDB
