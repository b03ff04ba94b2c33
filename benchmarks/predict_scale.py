"""Prediction at scale, in one run (figures for the README).

    python -m benchmarks.predict_scale [--users 1000000]

On the default generator's dataset of ``--users`` users (30 days): the point-in-time
snapshots at 4 cutoffs (C and three earlier ones, 7 days apart) by our lazy queries,
user range by user range, against DuckDB SQL of the same snapshot features (both read the
same Parquet files, one warm-up call then one timed; checked equal in row counts and column sums); then the whole
``ecomscale predict`` command in its own process: wall time and peak RSS, and from the same
stage in this process the time of training, scoring and permutation importance. Writes
benchmarks/results/predict.json (key "scale").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from benchmarks.conftest import best_of
from benchmarks.predict_peers import duckdb_snapshot
from benchmarks.predict_quality import RESULTS
from benchmarks.scaling import run_stage
from engine.features.buckets import clean_events
from engine.features.result import DEFAULT_RANGE_USERS
from engine.features.stage import user_ranges
from engine.io.dataset import load_dataset
from engine.predict import TARGETS, PredictConfig, plan_cutoffs, snapshot_columns
from engine.predict.stage import build_snapshots, event_bounds
from synth import SynthConfig, generate_dataset

ROUNDS = 1  # timed calls after one warm-up call (best_of)
CHECKED = ("n_events", "n_sessions", "purchases_7d", "active_days_28d", "revenue")


def snapshot_inputs(
    data: Path, config: PredictConfig
) -> tuple[list[dt.datetime], list[pl.LazyFrame], int]:
    """The cutoffs of ``config`` on ``data``, its events in the stage's user ranges, and the
    number of user ids."""
    events = clean_events(load_dataset(data), "error", dt.datetime.max.replace(tzinfo=dt.UTC))
    cutoff, training, _ = plan_cutoffs(*event_bounds([events]), config)
    user_max = int(events.select(pl.col("user_id").max()).collect().item())
    return [*training, cutoff], user_ranges(events, user_max, DEFAULT_RANGE_USERS), user_max + 1


def duckdb_snapshots(data: Path, cutoffs: list[dt.datetime], windows: Any) -> Any:
    """A function computing the same snapshots with DuckDB SQL over ``data``'s files."""
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    source = f"read_parquet('{data / 'events'}/*.parquet')"
    return lambda: [duckdb_snapshot(connection, source, c, windows) for c in cutoffs]


def assert_same_snapshots(mine: list[pl.DataFrame], reference: list[pl.DataFrame]) -> None:
    """Equal row counts and column sums at every cutoff."""
    for a, b in zip(mine, reference, strict=True):
        assert a.height == b.height
        for column in CHECKED:
            ours, theirs = (float(f[column].cast(pl.Float64).sum()) for f in (a, b))
            assert abs(ours - theirs) <= 1e-6 * max(1.0, abs(ours)), column


def snapshots_vs_duckdb(data: Path, config: PredictConfig) -> dict[str, Any]:
    """Our snapshots at the cutoffs of ``config`` against DuckDB's, same files, same run."""
    cutoffs, parts, users = snapshot_inputs(data, config)
    ours_s, mine = best_of(
        lambda: build_snapshots(parts, cutoffs, [False] * len(cutoffs), config), ROUNDS
    )
    duck_s, reference = best_of(duckdb_snapshots(data, cutoffs, config.all_windows), ROUNDS)
    assert_same_snapshots(mine, reference)
    return {
        "users": users,
        "events": pl.scan_parquet(data / "events" / "*.parquet").select(pl.len()).collect().item(),
        "cutoffs": len(cutoffs),
        "snapshot_rows": sum(f.height for f in mine),
        "features": len(snapshot_columns(config.all_windows)),
        "ours_s": ours_s,
        "duckdb_s": duck_s,
        "ratio_vs_duckdb": duck_s / ours_s,
    }


def stage_parts(data: Path, config: PredictConfig, out: Path) -> dict[str, Any]:
    """The predict command in its own process (wall time, peak RSS) and its metrics."""
    env = dict(os.environ)
    run = run_stage(["predict", str(data), "--out", str(out), "--target", config.target], env)
    found = json.loads((out / "metrics.json").read_text())
    evaluation = found["evaluation"]
    return {
        "target": config.target,
        "command_s": run["seconds"],
        "peak_rss_mb": run["peak_rss_mb"],
        "ok": run["ok"],
        "training_rows": found["training_rows"],
        "scored_users": found["scored_users"],
        "roc_auc": evaluation["model"]["roc_auc"] if evaluation else None,
        "best_baseline_auc": max(b["roc_auc"] for b in evaluation["baselines"].values())
        if evaluation
        else None,
        "timings_s": found.get("timings_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    config = PredictConfig()
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data"
        generate_dataset(
            SynthConfig(users=args.users, seed=2024), data, workers=os.cpu_count() or 1
        )
        row = snapshots_vs_duckdb(data, config)
        print(json.dumps(row), flush=True)
        stages = [stage_parts(data, PredictConfig(target=t), Path(scratch) / t) for t in TARGETS]
        for stage in stages:
            print(json.dumps(stage), flush=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["scale"] = {"snapshots": row, "stages": stages}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
