"""ecomscale ingest: a foreign event log, read once, laid out as a native dataset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.cli.common import (
    DataOptions,
    console,
    data_source,
    friendly_errors,
    progress,
    with_data_options,
)
from engine.io.atomic import check_writable
from engine.io.dataset import Dataset, DataSource, load_dataset
from engine.validation import Policy, parse_policy

if TYPE_CHECKING:
    from engine.io.ingest import IngestConfig, IngestResult


CLUSTER_BUCKETS = 16  # the bucketed layout made for a cluster run


def open_dataset(
    source: DataSource, out: Path, on_bad_rows: Policy, *, cluster: bool = False
) -> Dataset:
    """A native dataset as it is; a foreign log ingested into ``out/data`` first (or the
    earlier ingest there, when the source files are unchanged). For a ``cluster`` run, a
    native dataset by user range is laid out in buckets at ``out/data-buckets`` the same way
    (the Dask backend reads the bucketed layout)."""
    buckets = CLUSTER_BUCKETS if cluster else None
    data_dir = out / "data"
    if source.native:
        dataset = source.load()
        if not cluster or dataset.buckets:
            return dataset
        data_dir = out / "data-buckets"
    from engine.io.ingest import IngestConfig, ingested

    check_writable(data_dir.parent)
    result = with_progress(ingested, source, data_dir, IngestConfig(on_bad_rows, buckets))
    return load_dataset(result.path)


def with_progress(
    how: Callable[..., IngestResult], source: DataSource, out: Path, config: IngestConfig
) -> IngestResult:
    """``ingest`` or ``ingested`` under a progress bar, then what it did, printed."""
    source.files()  # a missing or empty source fails here, before any progress is drawn
    with progress() as bar:
        task = bar.add_task("ingest: read", total=None)
        result = how(
            source,
            out,
            config,
            lambda phase, done, total: bar.update(
                task, description=f"ingest: {phase}", completed=done, total=total
            ),
        )
    print_ingest(result)
    return result


def print_ingest(result: IngestResult) -> None:
    counts = result.counts
    if result.reused:
        console.print(
            f"ingest: source unchanged; reusing {result.path} ({counts['events']:,} events)"
        )
        return
    rate = counts["events_in"] / max(result.seconds, 1e-9)
    files = result.manifest["source"]["files"]
    size = sum(f["bytes"] for f in files) / 1e6
    console.print(
        f"ingest: {counts['events_in']:,} rows from {len(files)} file(s) ({size:,.0f} MB) in "
        f"{result.seconds:.1f} s ({rate:,.0f} rows/s) -> {result.path}"
    )
    dropped = counts.get("exact_duplicates", 0)
    conflicts = counts.get("product_conflicts", {"category": 0, "brand": 0})
    notes = [f"{counts['events']:,} events kept"]
    if "products" in counts:
        notes.append(f"{counts['products']:,} products")
    if dropped:
        notes.append(f"{dropped:,} exact duplicate rows dropped")
    if conflicts["category"] or conflicts["brand"]:
        notes.append(
            f"{conflicts['category']:,} products with conflicting categories and "
            f"{conflicts['brand']:,} with conflicting brands (most frequent value kept)"
        )
    console.print("ingest: " + "; ".join(notes))
    if result.manifest["validation"]:
        lines = ", ".join(f"{rule}={n:,}" for rule, n in result.manifest["validation"].items())
        console.print(f"ingest: rows set aside: {lines}")
    if result.manifest.get("quarantine"):
        console.print(f"ingest: rejected rows written to {result.manifest['quarantine']}")


@click.command()
@click.argument("logs", metavar="LOG...", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Dataset folder.")
@click.option(
    "--buckets",
    type=int,
    default=None,
    help="Buckets of the layout [default: one per 2M rows]; a few per Dask worker.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing folder at --out.")
@with_data_options
@friendly_errors
def ingest(
    logs: tuple[Path, ...],
    out: Path,
    buckets: int | None,
    overwrite: bool,
    data_options: DataOptions,
    on_bad_rows: str,
) -> None:
    """Read LOG (files or folders of CSV, .csv.gz or Parquet; any row order) once and write
    the native dataset at --out: events validated and sorted by (user_id, ts) in user
    buckets, products.parquet, keys/ (ids back to the source's keys) and a manifest with the
    source files' sizes and hashes. Every other command reads the result natively.

    \b
    ecomscale ingest 2019-Oct.csv 2019-Nov.csv --preset rees46 --out data/
    ecomscale ingest events.csv --preset retailrocket \\
        --item-properties item_properties_part1.csv --category-tree category_tree.csv --out data/
    ecomscale ingest log.parquet --column user_id=visitor --column ts=when --out data/
    """
    from engine.io.ingest import IngestConfig
    from engine.io.ingest import ingest as ingest_log

    source = data_source(logs, data_options)
    config = IngestConfig(parse_policy(on_bad_rows), buckets, overwrite)
    check_writable(out.parent)
    with_progress(ingest_log, source, out, config)
    console.print(f"[bold green]dataset: {out}")
