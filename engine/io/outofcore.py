"""The out-of-core sort: unsorted events laid out on disk into user buckets, each validated
and sorted on its own, so that memory follows one bucket, not the whole input."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl

from engine.schema import BUCKET_DIR, user_bucket
from engine.validation import Policy, RuleScan, ValidationReport, merge_reports, validate_events


def bucket_quarantine(quarantine_dir: str | Path | None, bucket: int) -> Path | None:
    """Where one bucket's rejected rows go."""
    return None if quarantine_dir is None else Path(quarantine_dir) / BUCKET_DIR.format(bucket)


def sorted_buckets(
    raw: pl.LazyFrame,
    folder: Path,
    scanned: RuleScan,
    n_buckets: int,
    on_bad_rows: Policy,
    quarantine_dir: str | Path | None,
) -> tuple[dict[int, pl.LazyFrame], ValidationReport]:
    """Lay unsorted events out into user buckets on disk, then validate each bucket sorted.

    A user's events all land in one bucket (the stable hash bucket of engine.schema), so
    sorting and the order rules (duplicates after sorting) work bucket by bucket, in bounded
    memory. Returns the clean, sorted events of every non-empty bucket (read lazily from
    ``folder``, which must outlive them) and the merged report.
    """
    raw.with_columns(user_bucket(pl.col("user_id"), n_buckets).alias("_bucket")).sink_parquet(
        pl.PartitionBy(folder, key="_bucket", include_key=False), mkdir=True
    )
    buckets: dict[int, pl.LazyFrame] = {}
    reports = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        value = path.name.partition("=")[2]
        bucket = int(value) if value.isdigit() else n_buckets  # null ids: checked last
        clean, bucket_report = validate_events(
            pl.scan_parquet(path / "**" / "*.parquet"),
            on_bad_rows=on_bad_rows,
            quarantine_dir=bucket_quarantine(quarantine_dir, bucket),
            declared_sorted=False,
        )
        buckets[bucket] = clean
        reports.append(bucket_report)
    merged = merge_reports(reports, on_bad_rows, quarantine_dir, resorted=True)
    return dict(sorted(buckets.items())), dataclasses.replace(
        merged, ts_max=scanned.ts_max, user_max=scanned.user_max
    )
