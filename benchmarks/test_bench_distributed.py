"""Serial vs a Dask LocalCluster (worker processes, one thread each) on the same bucketed data.

On a 2-core machine the cluster cannot beat the serial path (which already uses both
cores); this records what the scale-out costs here (task overhead, moving features between
processes, one round trip per K-Means step) so that regressions show, and the many-core
scaling comes from `python -m benchmarks.dask_scaling`. Quality: the cluster's features
and segment assignments are identical to the serial ones. Guards: GUARD_FEATURES and
GUARD_SEGMENTS of the serial throughput, well below the measured ratios (benchmarks/results/).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from benchmarks.conftest import Profile, best_of
from engine.distributed import compute_features_distributed, connect, segment_distributed
from engine.features import compute_features
from engine.io.dataset import load_dataset
from engine.segments import segment
from synth import SynthConfig, generate_dataset

BUCKETS = 8
WORKERS = 2
K = 6
GUARD_FEATURES = 0.25
GUARD_SEGMENTS = 0.1


@pytest.fixture(scope="module")
def bucketed(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench-dask") / f"data-{profile.name}"
    config = SynthConfig(users=profile.users, seed=2024, buckets=BUCKETS)
    generate_dataset(config, out, workers=os.cpu_count() or 1)
    return out


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    with connect(local_cluster=WORKERS) as client:
        yield client


def test_features_serial_vs_local_cluster(
    benchmark: Any, profile: Profile, bucketed: Path, client: Any
) -> None:
    dataset = load_dataset(bucketed)

    def on_cluster() -> Any:
        return compute_features_distributed(client, dataset).gather()

    features = benchmark.pedantic(on_cluster, rounds=profile.rounds, warmup_rounds=1)
    cluster_s = benchmark.stats.stats.min
    serial_s, serial = best_of(lambda: compute_features(dataset).features, profile.rounds)
    assert_frame_equal(features, serial)
    events = int(features["n_events"].sum())
    ratio = serial_s / cluster_s
    benchmark.extra_info.update(
        events=events,
        users=features.height,
        workers=WORKERS,
        buckets=BUCKETS,
        cluster_events_per_s=events / cluster_s,
        serial_events_per_s=events / serial_s,
        cluster_vs_serial=ratio,
        identical=True,
    )
    print(
        f"\nfeatures: cluster {events / cluster_s / 1e6:.2f}M ev/s, serial "
        f"{events / serial_s / 1e6:.2f}M ev/s ({ratio:.2f}x), identical"
    )
    assert ratio >= GUARD_FEATURES


def test_segments_serial_vs_local_cluster(
    benchmark: Any, profile: Profile, bucketed: Path, client: Any
) -> None:
    dataset = load_dataset(bucketed)
    on_cluster = compute_features_distributed(client, dataset)
    features = on_cluster.gather()

    def cluster_segments() -> Any:
        return segment_distributed(client, on_cluster.parts, k=K, seed=0)

    seg = benchmark.pedantic(cluster_segments, rounds=1, warmup_rounds=1)
    cluster_s = benchmark.stats.stats.min
    serial_s, serial = best_of(lambda: segment(features, k=K, seed=0), 1)
    assert_frame_equal(seg.assignments, serial.assignments)
    ratio = serial_s / cluster_s
    benchmark.extra_info.update(
        users=features.height,
        k=K,
        inertia=seg.inertia,
        serial_inertia=serial.inertia,
        cluster_s=cluster_s,
        serial_s=serial_s,
        cluster_vs_serial=ratio,
        identical_assignments=True,
    )
    print(
        f"\nsegments (k={K}, {features.height:,} users): cluster {cluster_s:.2f} s, serial "
        f"{serial_s:.2f} s ({ratio:.2f}x), identical assignments"
    )
    assert ratio >= GUARD_SEGMENTS
