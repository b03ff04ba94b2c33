"""ecomscale run: the whole pipeline, generating the default dataset when none is given."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import polars as pl

from engine.cli.common import (
    DEFAULT_OUT,
    DataOptions,
    cluster,
    console,
    data_source,
    friendly_errors,
    segments_table,
    with_cluster_options,
    with_data_options,
    with_space_option,
)
from engine.cli.generate import generate_with_progress
from engine.cli.ingest import CLUSTER_BUCKETS, open_dataset
from engine.io.atomic import check_writable
from engine.validation import parse_policy

DEFAULT_BUCKETS = CLUSTER_BUCKETS  # layout of the generated default dataset on a cluster


@click.command()
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path(DEFAULT_OUT), show_default=True
)
@click.option("--k", "k", default="auto", show_default=True, help="Number of segments or 'auto'.")
@click.option("--seed", type=int, default=0, show_default=True, help="Segmentation seed.")
@with_space_option
@click.option("--users", type=int, default=None, help="Users in the generated dataset (no DATA).")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True)
@with_data_options
@with_cluster_options
@friendly_errors
def run(
    data: Path | None,
    out: Path,
    k: str,
    seed: int,
    space: str,
    users: int | None,
    workers: int,
    data_options: DataOptions,
    on_bad_rows: str,
    scheduler: str | None,
    local_cluster: int | None,
) -> None:
    """Run everything: (generate ->) features -> segments -> insights -> report.html.

    With no DATA, the built-in default dataset is generated into OUT/data first (in the
    bucketed layout when a Dask cluster is asked for).
    """
    from engine.kmeans import compiled_in_this_process
    from engine.pipeline import RunConfig, run_stages
    from engine.segments import SegmentConfig

    segments = SegmentConfig.parse(k, seed, space)
    config = RunConfig.build(
        out,
        k=segments.k,
        seed=segments.seed,
        space=segments.space,
        on_bad_rows=parse_policy(on_bad_rows),
    )
    check_writable(out)
    start = time.perf_counter()
    if data is None:
        from synth import from_preset

        data = out / "data"
        on_cluster = scheduler is not None or local_cluster is not None
        if on_cluster:  # fail before generating, not after
            from engine.distributed import require_dask

            require_dask()
        console.print(f"[bold]no DATA given: generating the default dataset into {data}")
        synth_config = from_preset(
            "default", users=users, buckets=DEFAULT_BUCKETS if on_cluster else None
        )
        generate_with_progress(synth_config, data, workers, overwrite=True)
    source = data_source(data, data_options)
    with cluster(scheduler, local_cluster) as client:
        dataset = open_dataset(source, out, config.features.on_bad_rows, cluster=client is not None)
        with console.status("running") as status:
            result = run_stages(
                dataset,
                out,
                config,
                on_stage=lambda stage: status.update(f"[bold]{stage}"),
                client=client,
            )
    console.print(segments_table(pl.read_parquet(out / "segment_profiles.parquet")))
    for what, how in result.method:
        console.print(f"{what}: {how}")
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items())
    console.print(f"stages: {stages}; total {time.perf_counter() - start:.1f} s")
    if compiled_in_this_process():
        console.print("(segments included compiling the K-Means kernels: first run only)")
    if result.ari is not None:
        console.print(f"agreement with planted personas: ARI = {result.ari:.3f}")
    console.print(f"[bold green]report: {result.report}")
