"""Point-in-time snapshots at 4 cutoffs: ours vs DuckDB SQL of the same features, same run.

Ours runs engine.predict's lazy snapshot queries user range by user range (the stage's
path); DuckDB reads the same Parquet files and runs ``benchmarks.predict_peers``. Quality:
equal row counts and column sums at every cutoff, and the held-out ROC AUC of the whole
stage against its best baseline. Guard: ours at least GUARD_VS_DUCKDB times DuckDB's speed,
well below the ratio in benchmarks/results/ci.json so that noise does not trip it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.conftest import Profile, best_of
from benchmarks.predict_scale import assert_same_snapshots, duckdb_snapshots, snapshot_inputs
from engine.io.dataset import load_dataset
from engine.predict import PredictConfig, predict_stage
from engine.predict.stage import build_snapshots

GUARD_VS_DUCKDB = 1.5


def test_snapshots_vs_duckdb(
    benchmark: Any, profile: Profile, dataset: Path, tmp_path: Path
) -> None:
    config = PredictConfig()
    cutoffs, parts, users = snapshot_inputs(dataset, config)

    def ours() -> list[pl.DataFrame]:
        return build_snapshots(parts, cutoffs, [False] * len(cutoffs), config)

    mine = benchmark.pedantic(ours, rounds=profile.rounds, warmup_rounds=1, iterations=1)
    ours_s = benchmark.stats.stats.min
    theirs = duckdb_snapshots(dataset, cutoffs, config.all_windows)
    duck_s, reference = best_of(theirs, profile.rounds)
    assert_same_snapshots(mine, reference)

    native = load_dataset(dataset)
    start = time.perf_counter()
    assert native.products is not None
    result = predict_stage(parts, config, tmp_path, native.products.collect())
    stage_s = time.perf_counter() - start
    evaluation = result.metrics["evaluation"]
    best = max(b["roc_auc"] for b in evaluation["baselines"].values())
    ratio = duck_s / ours_s
    benchmark.extra_info.update(
        users=users,
        cutoffs=len(cutoffs),
        snapshot_rows=sum(f.height for f in mine),
        duckdb_s=duck_s,
        ratio_vs_duckdb=ratio,
        stage_s=stage_s,
        roc_auc=evaluation["model"]["roc_auc"],
        best_baseline_auc=best,
    )
    print(
        f"\nsnapshots: {users:,} users x {len(cutoffs)} cutoffs, ours {ours_s:.2f} s, "
        f"DuckDB {duck_s:.2f} s ({ratio:.2f}x); stage {stage_s:.1f} s, AUC "
        f"{evaluation['model']['roc_auc']:.3f} vs best baseline {best:.3f}"
    )
    assert evaluation["model"]["roc_auc"] >= best + 0.02
    assert ratio >= GUARD_VS_DUCKDB
