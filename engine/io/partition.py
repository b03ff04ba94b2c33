"""Repartition any event log into the bucketed layout that the Dask backend reads.

The events are validated on the way (the same rules and policies as the features stage),
laid out by the stable user hash of engine.schema and sorted within each bucket; the
result is an ordinary dataset folder (manifest, products, users and truth when the source
has them) that every ecomscale command reads.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from engine.exceptions import ConfigError
from engine.io.atomic import atomic_dir
from engine.io.dataset import Dataset
from engine.io.outofcore import sorted_buckets
from engine.schema import (
    BUCKET_DIR,
    EVENTS_DIR,
    MANIFEST,
    MAX_BUCKETS,
    PERSONAS_FILE,
    PRODUCTS_FILE,
    SCHEMA_VERSION,
    USER_KEYS_FILE,
    USERS_FILE,
)
from engine.validation import Policy, ValidationReport, parse_policy, scan_rules


@dataclass(frozen=True)
class PartitionConfig:
    """How to lay a dataset out in buckets (validated once, here).

    Attributes:
        buckets: number of buckets (a few per worker is a good start).
        on_bad_rows: validation policy, as for the features stage.
        quarantine_dir: where rejected rows go under "quarantine".
        overwrite: replace an existing folder at the target.
    """

    buckets: int
    on_bad_rows: Policy = "error"
    quarantine_dir: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.buckets <= MAX_BUCKETS:
            raise ConfigError.out_of_range("buckets", f"in [1, {MAX_BUCKETS}]", self.buckets)
        parse_policy(self.on_bad_rows)


def partition_dataset(
    dataset: Dataset,
    out_dir: str | Path,
    n_buckets: int,
    *,
    on_bad_rows: Policy = "error",
    quarantine_dir: str | Path | None = None,
    overwrite: bool = False,
) -> tuple[dict[str, Any], ValidationReport]:
    """Write ``dataset`` to ``out_dir`` in the bucketed layout, atomically (keyword form of
    ``partition_stage``; the arguments are ``PartitionConfig``'s).

    Returns:
        The manifest written and the validation report.
    """
    quarantine = None if quarantine_dir is None else Path(quarantine_dir)
    config = PartitionConfig(n_buckets, on_bad_rows, quarantine, overwrite)
    return partition_stage(dataset, out_dir, config)


def partition_stage(
    dataset: Dataset,
    out_dir: str | Path,
    config: PartitionConfig,
    source_record: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], ValidationReport]:
    """Write ``dataset`` to ``out_dir`` in the bucketed layout; the folder appears only when
    complete. ``source_record`` goes to the manifest's "source" (default: the path).
    Returns the manifest written and the validation report."""
    target = Path(out_dir)
    if dataset.source.resolve() == target.resolve():
        raise ConfigError(f"{target}: write the partitioned copy to a new folder")
    with atomic_dir(target, overwrite=config.overwrite) as staging:
        manifest, report = _write(
            dataset, staging, config.buckets, config.on_bad_rows, config.quarantine_dir
        )
        if source_record is not None:
            manifest["source"] = source_record
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return manifest, report


def _write(
    dataset: Dataset,
    root: Path,
    n_buckets: int,
    on_bad_rows: Policy,
    quarantine_dir: str | Path | None,
) -> tuple[dict[str, Any], ValidationReport]:
    events_dir = root / EVENTS_DIR
    events_dir.mkdir()
    scanned = scan_rules(
        dataset.events, on_bad_rows=on_bad_rows, declared_sorted=dataset.declared_sorted
    )
    with tempfile.TemporaryDirectory(prefix=".ecomscale-partition-", dir=root) as scratch:
        buckets, report = sorted_buckets(
            dataset.events, Path(scratch), scanned, n_buckets, on_bad_rows, quarantine_dir
        )
        for bucket, events in buckets.items():
            if bucket >= n_buckets:  # rows without a user id: all rejected by validation
                continue
            folder = events_dir / BUCKET_DIR.format(bucket)
            folder.mkdir()
            events.sink_parquet(folder / "part-00000.parquet", compression="zstd")
    tables = {
        PRODUCTS_FILE: dataset.products,
        USERS_FILE: dataset.users,
        PERSONAS_FILE: dataset.truth,
        USER_KEYS_FILE: dataset.user_keys,
    }
    for name, table in tables.items():
        if table is not None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            table.sink_parquet(root / name, compression="zstd")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "generator": "ecomscale.partition",
        "source": str(dataset.source),
        "layout": {"buckets": n_buckets},
        "counts": {"events": report.rows_out, "events_in": report.rows_in},
        "validation": report.counts,
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest, report


def partition_summary(root: Path) -> pl.DataFrame:
    """Rows per bucket of a bucketed dataset, from the Parquet footers (no data read)."""
    rows = [
        {"bucket": file.parent.name, "len": pq.ParquetFile(file).metadata.num_rows}
        for file in sorted((root / EVENTS_DIR).glob("bucket=*/*.parquet"))
    ]
    return pl.DataFrame(rows).group_by("bucket").agg(pl.col("len").sum()).sort("bucket")
