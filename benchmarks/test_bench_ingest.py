"""The foreign path: ingest of a time-ordered REES46-layout CSV against DuckDB's
``COPY (SELECT ... ORDER BY user_id, ts) TO parquet`` of the same file, and ``ecomscale run``
on that CSV (ingestion included) against ``ecomscale run`` on the native dataset of the same
events, each run in a fresh process for its peak RSS.

Quality: the same number of events out of ours and DuckDB; the same users and segments count
from both runs. Guards catch regressions of the ratios; the goals (ingest as fast as DuckDB,
the foreign run at most 1.5x the native one in time and peak RSS) are reported beside them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from benchmarks.conftest import Profile, best_of
from benchmarks.foreign_logs import write_rees46
from benchmarks.scaling import run_stage
from engine.io.dataset import DataSource
from engine.io.ingest import IngestConfig, ingest

GUARD_INGEST_VS_DUCKDB = 0.3  # ours / DuckDB speed; the goal is 1.0
GUARD_RUN_TIME = 2.5  # foreign run / native run; the goal is 1.5
GUARD_RUN_RSS = 2.0  # the goal is 1.5


@pytest.fixture(scope="module")
def csv_log(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rees46(dataset, tmp_path_factory.mktemp("foreign") / "rees46.csv")[0]


def _duckdb_copy(csv: Path, out: Path) -> int:
    con = duckdb.connect()
    con.sql(
        f"COPY (SELECT user_id, event_time AS ts, event_type, product_id, price "
        f"FROM read_csv('{csv}') ORDER BY user_id, ts) TO '{out}' (FORMAT parquet)"
    )
    return int(con.sql(f"SELECT count(*) FROM '{out}'").fetchall()[0][0])


def test_ingest_vs_duckdb_copy(
    benchmark: Any, profile: Profile, csv_log: Path, tmp_path: Path
) -> None:
    source = DataSource(csv_log, preset="rees46")
    config = IngestConfig(overwrite=True)
    result = benchmark.pedantic(
        lambda: ingest(source, tmp_path / "data", config),
        rounds=profile.rounds,
        warmup_rounds=1,
        iterations=1,
    )
    ours_s = benchmark.stats.stats.min
    duck_s, duck_rows = best_of(
        lambda: _duckdb_copy(csv_log, tmp_path / "duck.parquet"), profile.rounds
    )
    assert result.counts["events"] == duck_rows
    ratio = duck_s / ours_s
    size_mb = csv_log.stat().st_size / 1e6
    benchmark.extra_info.update(
        rows=duck_rows,
        csv_mb=size_mb,
        rows_per_s=duck_rows / ours_s,
        duckdb_rows_per_s=duck_rows / duck_s,
        speed_vs_duckdb=ratio,
        buckets=result.manifest["layout"]["buckets"],
    )
    print(
        f"\ningest: {duck_rows:,} rows ({size_mb:.0f} MB CSV): ours {duck_rows / ours_s / 1e6:.2f}"
        f" M rows/s, DuckDB COPY ... ORDER BY {duck_rows / duck_s / 1e6:.2f} M rows/s "
        f"(ours at {ratio:.2f}x DuckDB's speed)"
    )
    assert ratio >= GUARD_INGEST_VS_DUCKDB


def _cli_run(args: list[str]) -> tuple[float, float]:
    """``ecomscale`` in a fresh process (``scaling.run_stage``): wall seconds, peak RSS MB."""
    stage = run_stage(args, dict(os.environ))
    assert stage["ok"], stage["tail"]
    return stage["seconds"], stage["peak_rss_mb"]


def test_run_on_the_csv_vs_the_native_dataset(
    benchmark: Any, dataset: Path, csv_log: Path, tmp_path: Path
) -> None:
    def foreign() -> tuple[float, float]:
        shutil.rmtree(tmp_path / "foreign", ignore_errors=True)  # ingestion every time
        return _cli_run(
            ["run", str(csv_log), "--preset", "rees46", "--out", str(tmp_path / "foreign")]
        )

    native_runs = [
        _cli_run(["run", str(dataset), "--out", str(tmp_path / "native")]) for _ in range(2)
    ]
    foreign_runs = [foreign() for _ in range(2)]
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the timings are the runs above
    native_s = min(r[0] for r in native_runs)
    foreign_s = min(r[0] for r in foreign_runs)
    native_rss = min(r[1] for r in native_runs)
    foreign_rss = min(r[1] for r in foreign_runs)
    users = [
        pl.scan_parquet(tmp_path / d / "segments.parquet").select(pl.len()).collect().item()
        for d in ("native", "foreign")
    ]
    assert users[0] == users[1]
    benchmark.extra_info.update(
        native_s=native_s,
        foreign_s=foreign_s,
        time_ratio=foreign_s / native_s,
        native_peak_rss_mb=native_rss,
        foreign_peak_rss_mb=foreign_rss,
        rss_ratio=foreign_rss / native_rss,
        users=users[0],
    )
    print(
        f"\nrun on the CSV {foreign_s:.1f} s / {foreign_rss:.0f} MB vs native {native_s:.1f} s "
        f"/ {native_rss:.0f} MB: {foreign_s / native_s:.2f}x time, "
        f"{foreign_rss / native_rss:.2f}x peak RSS"
    )
    assert foreign_s / native_s <= GUARD_RUN_TIME
    assert foreign_rss / native_rss <= GUARD_RUN_RSS
