"""ecomscale partition: lay any event log out in the bucketed layout for Dask."""

from __future__ import annotations

import time
from pathlib import Path

import click

from engine.cli.common import (
    DataOptions,
    console,
    data_source,
    friendly_errors,
    print_validation,
    with_data_options,
)
from engine.cli.ingest import print_ingest
from engine.io.atomic import check_writable
from engine.io.partition import PartitionConfig, partition_stage, partition_summary
from engine.validation import parse_policy


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--buckets", type=int, required=True, help="Number of buckets (a few per worker).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to create.")
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for rejected rows [default: OUT/quarantine].",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing folder at --out.")
@with_data_options
@friendly_errors
def partition(
    data: Path,
    buckets: int,
    out: Path,
    quarantine: Path | None,
    overwrite: bool,
    data_options: DataOptions,
    on_bad_rows: str,
) -> None:
    """Lay an event log out in the bucketed layout that --scheduler/--local-cluster read
    (a foreign log is ingested straight into it)."""
    source = data_source(data, data_options)
    policy = parse_policy(on_bad_rows)
    config = PartitionConfig(buckets, policy, quarantine or out / "quarantine", overwrite)
    check_writable(out.parent)
    start = time.perf_counter()
    if not source.native:
        from engine.io.ingest import IngestConfig, ingest

        with console.status(f"ingesting into {buckets} buckets"):
            print_ingest(ingest(source, out, IngestConfig(policy, buckets, overwrite)))
    else:
        with console.status(f"partitioning into {buckets} buckets"):
            _, found = partition_stage(source.load(), out, config)
        print_validation(found)
    rows = partition_summary(out)["len"].to_list()
    console.print(
        f"partition: {sum(rows):,} events in {len(rows)} buckets "
        f"({min(rows):,}..{max(rows):,} rows each) in {time.perf_counter() - start:.1f} s "
        f"-> {out}"
    )
