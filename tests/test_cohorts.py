"""Retention cohorts and lifecycle: hand-worked logs for every definition, identities on
generated data for every period, and an independent DuckDB SQL oracle."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.cohorts import (
    CohortsConfig,
    cohort_tables,
    lifecycle_counts,
    lifecycle_table,
    retention_counts,
    retention_table,
    user_periods,
)
from engine.exceptions import ConfigError
from engine.features import compute_features
from engine.io.dataset import load_dataset
from engine.schema import EVENT_TYPE

UTC = dt.UTC


def log(rows: list[tuple[int, str, str]]) -> pl.LazyFrame:
    """Events from (user, ISO time, event type); price 10 for every purchase."""
    return pl.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "ts": [dt.datetime.fromisoformat(t).replace(tzinfo=UTC) for _, t, _ in rows],
            "event_type": [k for _, _, k in rows],
            "product_id": [1] * len(rows),
            "price": [10.0] * len(rows),
        },
        schema_overrides={
            "user_id": pl.UInt32,
            "ts": pl.Datetime("us", "UTC"),
            "event_type": EVENT_TYPE,
            "product_id": pl.UInt32,
            "price": pl.Float32,
        },
    ).lazy()


def matrix(events: pl.LazyFrame, period: str = "week", **options: str) -> dict:
    as_of = events.select(pl.col("ts").max()).collect().item()
    periods = user_periods(events, period)  # type: ignore[arg-type]
    counts = retention_counts(periods, period, **options).collect()  # type: ignore[arg-type]
    table = retention_table(counts, period, as_of)  # type: ignore[arg-type]
    return {
        (str(c), p): (u, n)
        for c, p, u, n in table.select("cohort", "period", "users", "cohort_users").iter_rows()
    }


# Mondays: 2026-10-05, 10-12, 10-19, 10-26. A week starts at Monday 00:00 UTC.
WEEKS = [
    (1, "2026-10-05T00:00:00", "view"),  # Monday midnight: week of 10-05
    (1, "2026-10-11T23:59:59", "view"),  # Sunday night: still week 10-05
    (1, "2026-10-12T00:00:00", "purchase"),  # the next Monday: week 10-12 (n = 1)
    (1, "2026-10-26T09:00:00", "view"),  # week 10-26 (n = 3); week 10-19 skipped
    (2, "2026-10-06T12:00:00", "view"),  # cohort 10-05, never back
    (3, "2026-10-13T08:00:00", "view"),  # a cohort of one: 10-12
    (3, "2026-10-20T08:00:00", "purchase"),  # n = 1
]


def test_first_time_retention_on_and_on_or_after_by_hand() -> None:
    events = log(WEEKS)
    on = matrix(events)
    assert on[("2026-10-05", 0)] == (2, 2)
    assert on[("2026-10-05", 1)] == (1, 2)  # user 1 on Monday 00:00 of the next week
    assert on[("2026-10-05", 2)] == (0, 2)  # nobody in week 10-19
    assert on[("2026-10-05", 3)] == (1, 2)
    assert on[("2026-10-12", 0)] == (1, 1) and on[("2026-10-12", 1)] == (1, 1)
    after = matrix(events, criterion="on_or_after")
    assert after[("2026-10-05", 2)] == (1, 2)  # user 1 came back later (week 10-26)
    assert after[("2026-10-05", 1)] == (1, 2) and after[("2026-10-05", 3)] == (1, 2)


def test_start_and_return_events_by_hand() -> None:
    events = log(WEEKS)
    buyers = matrix(events, start_event="purchase")  # cohort = week of the first purchase
    assert buyers[("2026-10-12", 0)] == (1, 1)  # user 1
    assert buyers[("2026-10-12", 2)] == (1, 1)  # user 1 views in week 10-26
    assert buyers[("2026-10-19", 0)] == (1, 1)  # user 3
    repeat = matrix(events, return_event="purchase")
    assert repeat[("2026-10-05", 1)] == (1, 2)  # user 1 bought in week 10-12
    assert repeat[("2026-10-05", 3)] == (0, 2)  # only viewed in week 10-26
    assert repeat[("2026-10-12", 1)] == (1, 1)  # user 3 bought in week 10-19


def test_recurring_retention_by_hand() -> None:
    """Recurring: a user is in the cohort of every period in which they did the start
    event; user 1 is in cohorts 10-05, 10-12 and 10-26."""
    events = log(WEEKS)
    rec = matrix(events, mode="recurring")
    assert rec[("2026-10-05", 0)] == (2, 2)
    assert rec[("2026-10-12", 0)] == (2, 2)  # users 1 and 3
    assert rec[("2026-10-12", 1)] == (1, 2)  # user 3 in week 10-19; user 1 was not
    assert rec[("2026-10-12", 2)] == (1, 2)  # user 1 in week 10-26
    assert rec[("2026-10-26", 0)] == (1, 1)


def test_days_and_months_by_hand() -> None:
    events = log(
        [
            (1, "2026-10-31T23:59:59", "view"),  # day 10-31, month 10
            (1, "2026-11-01T00:00:00", "view"),  # the next day and the next month
            (1, "2026-12-15T00:00:00", "view"),  # month n = 2
        ]
    )
    days = matrix(events, "day")
    assert days[("2026-10-31", 1)] == (1, 1) and days[("2026-10-31", 2)] == (0, 1)
    months = matrix(events, "month")
    assert months[("2026-10-01", 1)] == (1, 1) and months[("2026-10-01", 2)] == (1, 1)


def test_lifecycle_by_hand() -> None:
    events = log(WEEKS)
    counts = lifecycle_counts(user_periods(events, "week"), "week").collect()
    table = lifecycle_table(counts, "week", dt.date(2026, 10, 26))
    got = {(str(p), s): u for p, s, u in table.iter_rows() if u}
    assert got == {
        ("2026-10-05", "new"): 2,  # users 1 and 2
        ("2026-10-12", "returning"): 1,  # user 1
        ("2026-10-12", "new"): 1,  # user 3
        ("2026-10-12", "dormant"): 1,  # user 2
        ("2026-10-19", "returning"): 1,  # user 3
        ("2026-10-19", "dormant"): 1,  # user 1
        ("2026-10-26", "resurrecting"): 1,  # user 1, back after a week away
        ("2026-10-26", "dormant"): 1,  # user 3
    }
    # every status of every period is listed, the first period without dormant
    assert table.height == 3 + 4 * 3


@pytest.fixture(scope="module")
def generated(small_dataset: Path) -> tuple[pl.LazyFrame, dt.datetime]:
    result = compute_features(load_dataset(small_dataset))
    assert result.events is not None
    return result.events, result.as_of


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_identities_on_generated_data(
    generated: tuple[pl.LazyFrame, dt.datetime], period: str
) -> None:
    events, as_of = generated
    on = cohort_tables([events], as_of, CohortsConfig(period=period))  # type: ignore[arg-type]
    after = cohort_tables(
        [events],
        as_of,
        CohortsConfig(period=period, criterion="on_or_after"),  # type: ignore[arg-type]
    )
    r = on.retention
    assert (r.filter(pl.col("period") == 0)["rate"] == 1.0).all()
    both = r.join(after.retention, on=["cohort", "period"], suffix="_after")
    assert (both["users_after"] >= both["users"]).all()
    steps = after.retention.sort("cohort", "period").with_columns(
        pl.col("users").diff().over("cohort").alias("step")
    )
    assert (steps["step"].drop_nulls() <= 0).all()  # non-increasing along a cohort
    # Active users per period, counted plainly.
    truncate = {"day": "1d", "week": "1w", "month": "1mo"}[period]
    active = (
        events.select("user_id", pl.col("ts").dt.truncate(truncate).dt.date().alias("p"))
        .unique()
        .group_by("p")
        .len()
        .collect()
    )
    active_of = dict(active.iter_rows())
    wide = on.lifecycle.pivot(on="status", index="period_start", values="users").fill_null(0)
    starts = sorted(active_of)
    for row in wide.iter_rows(named=True):
        p = row["period_start"]
        assert row["new"] + row["returning"] + row["resurrecting"] == active_of.get(p, 0)
        i = starts.index(p) if p in starts else None
        if i:  # returning + dormant = active users of the previous period
            assert row["returning"] + row["dormant"] == active_of[starts[i - 1]]
    # Retained users summed over cohorts match a plain count of (cohort, returns) pairs.
    assert (
        r.filter(pl.col("period") == 0)["cohort_users"].sum()
        == events.select(pl.col("user_id").n_unique()).collect().item()
    )


DUCKDB_RETENTION = """
WITH act AS (SELECT DISTINCT user_id, date_trunc('week', ts)::DATE AS p FROM ev),
coh AS (SELECT user_id, min(p) AS cohort FROM act GROUP BY user_id)
SELECT c.cohort, (datediff('day', c.cohort, a.p) // 7)::INTEGER AS period, count(*) AS users
FROM coh c JOIN act a USING (user_id) GROUP BY 1, 2
"""
DUCKDB_LIFECYCLE = """
WITH act AS (SELECT DISTINCT user_id, date_trunc('week', ts)::DATE AS p FROM ev),
first AS (SELECT user_id, min(p) AS f FROM act GROUP BY user_id),
st AS (
    SELECT a.p, CASE WHEN a.p = f.f THEN 'new'
        WHEN EXISTS (SELECT 1 FROM act b WHERE b.user_id = a.user_id
                     AND b.p = (a.p - INTERVAL 7 DAY)::DATE) THEN 'returning'
        ELSE 'resurrecting' END AS status
    FROM act a JOIN first f USING (user_id)),
dor AS (
    SELECT (a.p + INTERVAL 7 DAY)::DATE AS p, 'dormant' AS status FROM act a
    WHERE NOT EXISTS (SELECT 1 FROM act b WHERE b.user_id = a.user_id
                      AND b.p = (a.p + INTERVAL 7 DAY)::DATE))
SELECT p AS period_start, status, count(*) AS users
FROM (SELECT * FROM st UNION ALL SELECT * FROM dor) GROUP BY 1, 2
"""


def test_weekly_tables_match_duckdb_sql(generated: tuple[pl.LazyFrame, dt.datetime]) -> None:
    events, as_of = generated
    tables = cohort_tables([events], as_of, CohortsConfig(period="week"))
    con = duckdb.connect()
    con.sql("SET TimeZone = 'UTC'")
    con.register("ev", events.select("user_id", "ts").collect().to_arrow())
    sql = con.sql(DUCKDB_RETENTION).pl().with_columns(pl.col("users").cast(pl.UInt32))
    ours = tables.retention.filter(pl.col("users") > 0).select("cohort", "period", "users")
    assert_frame_equal(
        ours.sort("cohort", "period"), sql.sort("cohort", "period"), check_dtypes=False
    )
    life = con.sql(DUCKDB_LIFECYCLE).pl()
    last = tables.lifecycle["period_start"].max()
    life = life.filter(pl.col("period_start") <= last)
    ours_life = tables.lifecycle.filter(pl.col("users") > 0)
    key = ["period_start", "status"]
    assert_frame_equal(ours_life.sort(key), life.sort(key), check_dtypes=False)


def test_parts_add_up_and_row_order_does_not_matter(
    generated: tuple[pl.LazyFrame, dt.datetime],
) -> None:
    events, as_of = generated
    config = CohortsConfig(period="week", criterion="on_or_after")
    whole = cohort_tables([events], as_of, config)
    shuffled = events.collect().sample(fraction=1.0, shuffle=True, seed=3).lazy()
    halves = [
        shuffled.filter(pl.col("user_id") % 2 == 0),
        shuffled.filter(pl.col("user_id") % 2 == 1),
    ]
    split = cohort_tables(halves, as_of, config)
    assert_frame_equal(split.retention, whole.retention)
    assert_frame_equal(split.lifecycle, whole.lifecycle)
    assert_frame_equal(split.revenue, whole.revenue, rel_tol=1e-12)


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="period must be one of"):
        CohortsConfig(period="year")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="start_event must be one of"):
        CohortsConfig(start_event="click")


def test_cli_writes_the_tables(small_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohorts"
    cmd = [sys.executable, "-m", "engine.cli", "cohorts", str(small_dataset), "--out", str(out)]
    done = subprocess.run([*cmd, "--period", "month"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for name in ("retention", "revenue_retention", "lifecycle"):
        assert pl.read_parquet(out / f"{name}.parquet").height > 0
    bad = subprocess.run([*cmd, "--period", "year"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Invalid value for '--period'" in bad.stderr
