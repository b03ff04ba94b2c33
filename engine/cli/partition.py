"""ecomscale partition: lay any event log out in the bucketed layout for Dask."""

from __future__ import annotations

import time
from pathlib import Path

import click

from engine.cli.common import (
    console,
    data_source,
    friendly_errors,
    print_validation,
    with_data_options,
)
from engine.io.atomic import check_writable
from engine.io.partition import PartitionConfig, partition_stage, partition_summary
from engine.validation import parse_policy


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--buckets", type=int, required=True, help="Number of buckets (a few per worker).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create.")
@click.option(
    "--quarantine", type=click.Path(path_type=Path), default=Path("quarantine"), show_default=True
)
@click.option("--overwrite", is_flag=True, help="Replace an existing folder at --out.")
@with_data_options
@friendly_errors
def partition(
    data: Path,
    buckets: int,
    out: Path,
    quarantine: Path,
    overwrite: bool,
    fmt: str,
    preset: str | None,
    columns: tuple[str, ...],
    on_bad_rows: str,
) -> None:
    """Lay an event log out in the bucketed layout that --scheduler/--local-cluster read."""
    source = data_source(data, fmt, preset, columns)
    config = PartitionConfig(buckets, parse_policy(on_bad_rows), quarantine, overwrite)
    check_writable(out.parent)
    if config.on_bad_rows == "quarantine":
        check_writable(quarantine)
    dataset = source.load()
    start = time.perf_counter()
    with console.status(f"partitioning into {buckets} buckets"):
        manifest, found = partition_stage(dataset, out, config)
    print_validation(found)
    rows = partition_summary(out)["len"].to_list()
    console.print(
        f"partition: {manifest['counts']['events']:,} events in {len(rows)} buckets "
        f"({min(rows):,}..{max(rows):,} rows each) in {time.perf_counter() - start:.1f} s "
        f"-> {out}"
    )
