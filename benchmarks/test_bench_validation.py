"""Loading + validation (every rule, one streaming pass) vs Polars' decode of the same columns.

Guard: within GUARD_VS_FLOOR times the decode time. Measured ratios: benchmarks/results/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.conftest import Profile, best_of, slowdown
from engine.io.dataset import load_dataset
from engine.validation import validate_events

GUARD_VS_FLOOR = 10.0


def test_validation_vs_decode_floor(benchmark: Any, profile: Profile, dataset: Path) -> None:
    def ours() -> Any:
        _, report = validate_events(load_dataset(dataset).events)
        if slowdown("validation"):
            time.sleep(5.0)
        return report

    report = benchmark.pedantic(ours, rounds=profile.rounds, warmup_rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.min
    floor_s, floor = best_of(lambda: pl.read_parquet(dataset / "events"), profile.rounds)
    assert report.rows_in == floor.height and report.clean
    ratio = ours_s / floor_s
    benchmark.extra_info.update(
        rows=report.rows_in, rows_per_s=report.rows_in / ours_s, times_floor=ratio
    )
    print(
        f"\nvalidation: {report.rows_in:,} rows, {report.rows_in / ours_s / 1e6:.1f} M rows/s, {ratio:.1f}x the decode time"
    )
    assert ratio <= GUARD_VS_FLOOR
