"""The cohorts on Dask: one task per bucket computes its users' additive counts
(``engine.cohorts.stage.part_counts``, the serial path's unit of work); the driver adds
them up. Only the small count tables travel."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from engine.cohorts.stage import (
    CohortsConfig,
    CohortTables,
    PartCounts,
    part_counts,
    tables_from_counts,
    write_cohorts,
)
from engine.io.dataset import Dataset, bucket_events
from engine.schema import user_bucket
from engine.validation import Policy, validate_events

if TYPE_CHECKING:
    from distributed import Client


def _bucket_counts(
    files: tuple[Path, ...],
    as_of: dt.datetime,
    config: CohortsConfig,
    segments: pl.DataFrame | None,
) -> PartCounts:
    """One bucket's counts, on a worker: validate its events (bad rows dropped unless the
    policy is "error"), then the serial unit of work."""
    policy: Policy = "drop" if config.on_bad_rows != "error" else "error"
    events, _ = validate_events(bucket_events(files), on_bad_rows=policy, declared_sorted=True)
    return part_counts(events.filter(pl.col("ts") <= as_of), config, segments)


def cohorts_stage_distributed(
    client: Client,
    dataset: Dataset,
    as_of: dt.datetime,
    config: CohortsConfig,
    out: str | Path,
    segments: pl.DataFrame | None = None,
) -> CohortTables:
    """``engine.cohorts.cohorts_stage`` with one task per bucket of the bucketed layout;
    each task gets the segments of its own users only."""
    n_buckets = len(dataset.buckets)
    bucket_of = None
    if segments is not None:
        bucket_of = segments.select(
            "user_id", "segment_name", user_bucket(pl.col("user_id"), n_buckets).alias("_b")
        )
    futures = []
    for bucket, files in enumerate(dataset.buckets):
        if not files:
            continue
        own = None
        if bucket_of is not None:
            own = bucket_of.filter(pl.col("_b") == bucket).drop("_b")
        futures.append(client.submit(_bucket_counts, files, as_of, config, own))
    tables = tables_from_counts(client.gather(futures), as_of, config)
    write_cohorts(tables, out)
    return tables
