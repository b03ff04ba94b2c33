"""ecomscale features: validate an event log, one row of features per user."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click
import polars as pl

from engine.cli.common import (
    DataOptions,
    cluster,
    console,
    data_source,
    friendly_errors,
    parse_as_of,
    print_validation,
    progress,
    with_cluster_options,
    with_data_options,
)
from engine.cli.ingest import open_dataset
from engine.features import FeaturesConfig, features_stage
from engine.io.atomic import check_writable, write_parquet_atomic
from engine.validation import parse_policy


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("features.parquet"), show_default=True
)
@with_data_options
@click.option(
    "--as-of", default=None, help="Reference time for recency/tenure (ISO; default: last event)."
)
@click.option(
    "--session-gap", type=float, default=30.0, show_default=True, help="Session timeout in minutes."
)
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for rejected rows [default: quarantine/ beside --out].",
)
@with_cluster_options
@friendly_errors
def features(
    data: Path,
    out: Path,
    data_options: DataOptions,
    on_bad_rows: str,
    as_of: str | None,
    session_gap: float,
    quarantine: Path | None,
    scheduler: str | None,
    local_cluster: int | None,
) -> None:
    """Validate an event log and write one row of behavioural features per user."""
    source = data_source(data, data_options)
    quarantine = quarantine or out.parent / "quarantine"
    config = FeaturesConfig(
        on_bad_rows=parse_policy(on_bad_rows),
        quarantine_dir=quarantine,
        as_of=parse_as_of(as_of),
        session_gap=dt.timedelta(minutes=session_gap),
    )
    check_writable(out.parent)
    if config.on_bad_rows == "quarantine":
        check_writable(quarantine)
    wants_cluster = scheduler is not None or local_cluster is not None
    dataset = open_dataset(source, out.parent, config.on_bad_rows, cluster=wants_cluster)
    start = time.perf_counter()
    with cluster(scheduler, local_cluster) as client:
        if client is not None:
            from engine.distributed import features_stage_distributed

            with console.status("features (one task per bucket)"):
                on_cluster = features_stage_distributed(client, dataset, config)
                write_parquet_atomic(on_cluster.gather(), out)
            result = on_cluster.result
    if client is None:
        with progress() as bar:
            task = bar.add_task("features (user ranges)", total=None)
            result = features_stage(
                dataset,
                config,
                on_range=lambda done, total: bar.update(task, completed=done, total=total),
                out=out,
            )
    seconds = time.perf_counter() - start
    print_validation(result.report)
    written = pl.scan_parquet(out)
    users, events = written.select(pl.len(), pl.col("n_events").sum()).collect().row(0)
    n_features = len(written.collect_schema()) - 1
    console.print(
        f"features: {users:,} users x {n_features} features from {events:,} events "
        f"in {seconds:.1f} s -> {out}"
    )
