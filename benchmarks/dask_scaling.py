"""Scaling with Dask workers: features and segments on a LocalCluster of 1, 2, 4... workers.

    python -m benchmarks.dask_scaling --events 10M --workers 1,2,4,8,16 --out benchmarks/results

Generates one bucketed dataset, then for each worker count starts a LocalCluster (worker
processes, one thread each: Polars and numba pinned to one thread per worker) and times
the features stage (one task per bucket, features gathered to the driver) and the segment
stage (K-Means with a fixed k). The serial path, with all cores, is the baseline of the
same run. Every cluster result is checked against the serial one (identical features and
assignments). Writes dask.md and dask.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from polars.testing import assert_frame_equal

from benchmarks.scaling import EVENTS_PER_USER, parse_size
from engine.distributed import compute_features_distributed, connect, segment_distributed
from engine.features import compute_features
from engine.io.dataset import load_dataset
from engine.segments import segment
from synth import SynthConfig, generate_dataset

K = 6


def study(data: Path, workers: list[int], kmeans_partitions: int) -> dict[str, Any]:
    dataset = load_dataset(data)
    start = time.perf_counter()
    serial = compute_features(dataset).features
    assert serial is not None
    serial_features_s = time.perf_counter() - start
    start = time.perf_counter()
    serial_seg = segment(serial, k=K, seed=0)
    serial_segment_s = time.perf_counter() - start
    events = int(serial["n_events"].sum())
    rows = []
    for n in workers:
        with connect(local_cluster=n) as client:
            compute_features_distributed(client, dataset).gather()  # warm-up: imports, numba
            start = time.perf_counter()
            on_cluster = compute_features_distributed(client, dataset)
            features = on_cluster.gather()
            features_s = time.perf_counter() - start
            start = time.perf_counter()
            seg = segment_distributed(
                client, on_cluster.parts, k=K, seed=0, kmeans_partitions=kmeans_partitions
            )
            segment_s = time.perf_counter() - start
        assert_frame_equal(features, serial)
        assert_frame_equal(seg.assignments, serial_seg.assignments)
        rows.append(
            {
                "workers": n,
                "features_s": features_s,
                "events_per_s": events / features_s,
                "segment_s": segment_s,
                "identical": True,
            }
        )
        print(f"{n} workers: features {features_s:.1f} s, segment {segment_s:.1f} s")
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "events": events,
        "users": serial.height,
        "k": K,
        "kmeans_partitions": kmeans_partitions,
        "serial": {"features_s": serial_features_s, "segment_s": serial_segment_s},
        "cluster": rows,
    }


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "dask.json").write_text(json.dumps(result, indent=2) + "\n")
    serial = result["serial"]
    lines = [
        f"Dask LocalCluster scaling ({result['machine']}; {result['events']:,} events, "
        f"{result['users']:,} users, k={result['k']}, "
        f"{result['kmeans_partitions']} K-Means partitions). Serial (all cores): features "
        f"{serial['features_s']:.1f} s, segment {serial['segment_s']:.1f} s.",
        "",
        "| workers | features s | M events/s | vs serial | segment s | vs serial | identical |",
        "|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in result["cluster"]:
        lines.append(
            f"| {row['workers']} | {row['features_s']:.1f} | {row['events_per_s'] / 1e6:.2f} "
            f"| {serial['features_s'] / row['features_s']:.2f}x | {row['segment_s']:.1f} "
            f"| {serial['segment_s'] / row['segment_s']:.2f}x | {'yes' if row['identical'] else 'no'} |"
        )
    (out / "dask.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="10M", help="events to generate (e.g. 10M)")
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2,4,8,16")
    parser.add_argument("--buckets", type=int, default=32)
    parser.add_argument("--kmeans-partitions", type=int, default=4)
    parser.add_argument("--data", type=Path, default=Path("dask-scaling-data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    users = int(parse_size(args.events) / EVENTS_PER_USER)
    config = SynthConfig(users=users, seed=2024, buckets=args.buckets)
    if not args.data.exists():
        generate_dataset(config, args.data, workers=os.cpu_count() or 1)
    workers = [int(w) for w in args.workers.split(",")]
    result = study(args.data, workers, args.kmeans_partitions)
    write(result, args.out)
    print((args.out / "dask.md").read_text())


if __name__ == "__main__":
    main()
