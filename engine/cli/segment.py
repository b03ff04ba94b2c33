"""ecomscale segment: K-Means segments with names, from a features file."""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl

from engine.cli.common import (
    cluster,
    console,
    friendly_errors,
    segments_table,
    with_cluster_options,
    with_space_option,
)
from engine.io.atomic import check_writable
from engine.io.dataset import require_file_columns


@click.command()
@click.argument("features_path", metavar="FEATURES", type=click.Path(path_type=Path, exists=True))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("segments.parquet"), show_default=True
)
@click.option("--k", "k", default="auto", show_default=True, help="Number of segments or 'auto'.")
@click.option("--seed", type=int, default=0, show_default=True)
@with_space_option
@with_cluster_options
@friendly_errors
def segment(
    features_path: Path,
    out: Path,
    k: str,
    seed: int,
    space: str,
    scheduler: str | None,
    local_cluster: int | None,
) -> None:
    """Cluster users (features.parquet) into named segments."""
    from engine.segments import NEEDED_COLUMNS, SegmentConfig, segment_stage, write_segmentation

    config = SegmentConfig.parse(k, seed, space)
    check_writable(out.parent)
    require_file_columns(features_path, NEEDED_COLUMNS, "compute them with `ecomscale features`")
    with cluster(scheduler, local_cluster) as client, console.status("segmenting"):
        if client is None:
            seg = segment_stage(pl.read_parquet(features_path), config, out)
        else:  # each worker reads its own buckets of users from the file
            from engine.distributed import features_file_partitions, segment_distributed

            workers = len(client.scheduler_info(n_workers=-1)["workers"])
            parts = features_file_partitions(client, features_path, 4 * max(workers, 1))
            seg = segment_distributed(
                client, parts, k=config.k, seed=config.seed, space=config.space
            )
            write_segmentation(seg, out)
    console.print(segments_table(seg.profiles))
    console.print(f"segments: {seg.k} segments for {seg.assignments.height:,} users -> {out}")
    console.print(f"why: {seg.why_k}; stability across seeds (ARI) {seg.stability:.3f}")
