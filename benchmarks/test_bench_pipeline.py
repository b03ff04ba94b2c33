"""The end-to-end `run` (features -> segments -> insights -> report) on the profile's dataset.

No peer does the same job end to end; recorded per stage for comparisons between runs
(`--benchmark-compare`), with the persona ARI as the quality figure. Guard: ARI >= 0.3 (segments follow the planted
behaviour at all; how close they come to the best possible is test_bench_segments.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.conftest import Profile
from engine.pipeline import run_pipeline


def test_run_end_to_end(benchmark: Any, profile: Profile, dataset: Path, tmp_path: Path) -> None:
    result = benchmark.pedantic(
        run_pipeline, args=(dataset, tmp_path / "out"), rounds=1, warmup_rounds=0, iterations=1
    )
    benchmark.extra_info.update(
        users=result.users,
        events=result.events,
        ari=result.ari,
        stage_seconds=result.timings,
        events_per_s=result.events / benchmark.stats.stats.min,
    )
    print(
        f"\nrun: {result.events:,} events, {benchmark.stats.stats.min:.1f} s, stages {result.timings}, ARI {result.ari:.3f}"
    )
    assert result.ari is not None and result.ari >= 0.3
