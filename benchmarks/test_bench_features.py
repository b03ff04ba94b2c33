"""Features: ours vs the same features in DuckDB SQL and pandas, and Polars' decode floor.

pandas reads its subset from Parquet and computes (what a notebook does); DuckDB reads the
Parquet files itself; ours includes loading and validation. The guards (below) sit well
under the ratios measured on the 2-core machine (benchmarks/results/, the README table).
Quality: identical row counts and n_events totals, and revenue equal to DuckDB's for every
user.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from benchmarks.conftest import Profile, best_of, child_peak_rss_mb, self_peak_rss_snippet, slowdown
from benchmarks.peers import duckdb_features, pandas_features
from engine.features import compute_features
from engine.io.dataset import load_dataset

GUARD_VS_DUCKDB = 1.3
GUARD_VS_PANDAS = 1.8
GUARD_VS_FLOOR = 40.0


def ours(data: Path) -> pl.DataFrame:
    result = compute_features(load_dataset(data))
    if slowdown("features"):
        time.sleep(5.0)
    return result.features


def test_features_vs_peers(
    benchmark: pytest.FixtureRequest, profile: Profile, dataset: Path, tmp_path: Path
) -> None:
    features = benchmark.pedantic(
        ours, args=(dataset,), rounds=profile.rounds, warmup_rounds=1, iterations=1
    )
    ours_s = benchmark.stats.stats.min
    events = int(features["n_events"].sum())

    duck_s, duck = best_of(lambda: duckdb_features(dataset), profile.rounds)
    floor_s, floor = best_of(lambda: pl.read_parquet(dataset / "events"), profile.rounds)

    # pandas on a subset of users (the same per-event work), compared per event.
    subset = pl.read_parquet(dataset / "events").filter(pl.col("user_id") < profile.pandas_users)
    subset.write_parquet(tmp_path / "subset.parquet")

    def with_pandas() -> pd.DataFrame:
        events = pd.read_parquet(tmp_path / "subset.parquet")
        products = pd.read_parquet(dataset / "products.parquet")
        return pandas_features(events, products)

    pandas_s, pandas_out = best_of(with_pandas, 1)
    pandas_per_event = pandas_s / subset.height

    assert duck.height == features.height == floor["user_id"].n_unique()
    assert int(duck["n_events"].sum()) == events == floor.height
    assert int(pandas_out["n_events"].sum()) == subset.height
    np.testing.assert_allclose(
        features.sort("user_id")["revenue"].to_numpy(), duck["revenue"].to_numpy(), rtol=1e-9
    )

    vs_duck = duck_s / ours_s
    vs_pandas = pandas_per_event / (ours_s / events)
    of_floor = ours_s / floor_s
    benchmark.extra_info.update(
        events=events,
        users=features.height,
        events_per_s=events / ours_s,
        duckdb_events_per_s=events / duck_s,
        pandas_events_per_s=1 / pandas_per_event,
        floor_events_per_s=events / floor_s,
        ratio_vs_duckdb=vs_duck,
        ratio_vs_pandas=vs_pandas,
        times_floor=of_floor,
    )
    print(
        f"\nfeatures: {events:,} events, ours {events / ours_s / 1e6:.1f} M/s, DuckDB {events / duck_s / 1e6:.1f} M/s "
        f"({vs_duck:.2f}x), pandas {1 / pandas_per_event / 1e6:.2f} M/s ({vs_pandas:.1f}x), "
        f"decode floor {events / floor_s / 1e6:.1f} M/s ({of_floor:.1f}x floor time)"
    )
    assert vs_duck >= GUARD_VS_DUCKDB
    assert vs_pandas >= GUARD_VS_PANDAS
    assert of_floor <= GUARD_VS_FLOOR


def test_features_peak_memory(benchmark: pytest.FixtureRequest, dataset: Path) -> None:
    code = (
        "from engine.features import compute_features; from engine.io.dataset import load_dataset\n"
        f"compute_features(load_dataset({str(dataset)!r}))\n" + self_peak_rss_snippet()
    )
    rss = benchmark.pedantic(lambda: child_peak_rss_mb(code), rounds=1, iterations=1)
    benchmark.extra_info["peak_rss_mb"] = rss
    print(f"\nfeatures peak RSS: {rss:.0f} MB")
