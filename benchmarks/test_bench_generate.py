"""Generation throughput vs pyarrow's Parquet write floor for the same rows.

The floor writes the identical in-memory table, with the same options, split into the same
parts and written by as many threads as we have workers. The worker's peak RSS (VmHWM) is
recorded next to the throughput. Guard: ours >= GUARD_OF_FLOOR of the floor; measured
figures: benchmarks/results/ and the README table.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks.conftest import Profile, best_of, child_peak_rss_mb, self_peak_rss_snippet, slowdown
from synth import SynthConfig, generate_dataset
from synth.writer import PARQUET_OPTIONS

GUARD_OF_FLOOR = 0.12


def test_generation_vs_write_floor(
    benchmark: pytest.FixtureRequest, profile: Profile, tmp_path: Path, dataset: Path
) -> None:
    workers = os.cpu_count() or 1
    config = SynthConfig(users=profile.users, seed=2024)
    out = tmp_path / "gen"

    worker_rss: list[float] = []

    def ours() -> dict:
        manifest = generate_dataset(
            config,
            out,
            workers=workers,
            overwrite=True,
            on_part=lambda r, _: worker_rss.append(r.peak_rss_mb),
        )
        if slowdown("generate"):
            time.sleep(5.0)
        return manifest

    manifest = benchmark.pedantic(ours, rounds=profile.rounds, warmup_rounds=0, iterations=1)
    events = manifest["counts"]["events"]
    ours_s = benchmark.stats.stats.min

    table = pq.read_table(dataset / "events")
    floor_dir = tmp_path / "floor"

    def floor() -> None:
        shutil.rmtree(floor_dir, ignore_errors=True)
        floor_dir.mkdir()
        # Same parts as ours, written from memory by the same number of threads.
        rows = table.num_rows
        step = -(-rows // max(manifest["counts"]["parts"], 1))
        from concurrent.futures import ThreadPoolExecutor

        def write(i: int) -> None:
            pq.write_table(
                table.slice(i * step, step),
                floor_dir / f"p{i}.parquet",
                row_group_size=1_000_000,
                **PARQUET_OPTIONS,
            )

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(write, range(manifest["counts"]["parts"])))

    floor_s, _ = best_of(floor, profile.rounds)
    share = floor_s / ours_s
    if manifest["counts"]["parts"] == 1:  # written in this process: a worker's job, afresh
        (tmp_path / "rss").mkdir()
        worker_rss = [
            child_peak_rss_mb(
                "from pathlib import Path\nfrom synth import SynthConfig\n"
                "from synth.dataset import _generate_part\n"
                f"_generate_part(SynthConfig(users={profile.users}, seed=2024), 0, "
                f"Path({str(tmp_path / 'rss')!r}))\n" + self_peak_rss_snippet()
            )
        ]
    benchmark.extra_info.update(
        events=events,
        events_per_s=events / ours_s,
        floor_events_per_s=events / floor_s,
        share_of_floor=share,
        worker_peak_rss_mb=max(worker_rss),
        workers=workers,
    )
    print(
        f"\ngenerate: {events:,} events, ours {events / ours_s / 1e6:.2f} M/s, floor {events / floor_s / 1e6:.2f} M/s, {share:.0%} of floor, peak RSS of the writing process(es) {max(worker_rss):.0f} MB"
    )
    assert share >= GUARD_OF_FLOOR
