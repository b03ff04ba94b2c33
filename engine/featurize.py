"""The features stage at the edge: validate, compute per user range, write atomically.

Sorted input is processed in user_id ranges: each range is a filter that the Parquet scan
pushes down to row-group statistics, so memory is bounded by the users of one range, not by
the number of events.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from engine.exceptions import ConfigError, DataValidationError
from engine.features import DEFAULT_SESSION_GAP, user_features
from engine.loading import Dataset
from engine.validation import (
    Policy,
    RuleScan,
    ValidationReport,
    scan_rules,
    validate_events,
)

MAX_CATEGORIES = 200
DEFAULT_RANGE_USERS = 250_000
DEFAULT_BUCKET_ROWS = 5_000_000


@dataclass(frozen=True)
class FeatureResult:
    """Features of every user (None when streamed to ``out``), and what validation found.

    ``events`` is the validated event plan (lazy; up to ``as_of``), for later stages.
    """

    features: pl.DataFrame | None
    report: ValidationReport
    as_of: dt.datetime
    categories: list[str]
    events: pl.LazyFrame | None = None


def category_list(products: pl.LazyFrame | None) -> list[str]:
    """All categories in the products table, sorted (a small collect at the edge)."""
    if products is None:
        return []
    categories = (
        products.select(pl.col("category").drop_nulls().unique().sort())
        .collect()["category"]
        .to_list()
    )
    if len(categories) > MAX_CATEGORIES:
        raise ConfigError(
            f"{len(categories)} categories; at most {MAX_CATEGORIES} get share features. "
            "Hint: map a coarser category column with --column category=NAME"
        )
    return categories


def compute_features(
    dataset: Dataset,
    *,
    on_bad_rows: Policy = "error",
    quarantine_dir: str | Path | None = None,
    as_of: dt.datetime | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
    range_users: int = DEFAULT_RANGE_USERS,
    on_range: Callable[[int, int], None] | None = None,
    out: str | Path | None = None,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
) -> FeatureResult:
    """Validate the events and compute user features.

    Args:
        dataset: from ``load_dataset``.
        on_bad_rows: "error", "drop" or "quarantine" (see engine.validation).
        quarantine_dir: folder for quarantine.parquet.
        as_of: reference time (default: the largest ts).
        session_gap: session timeout.
        range_users: users per range when processing sorted input range by range.
        on_range: progress callback (ranges done, ranges total).
        out: write the features to this Parquet file range by range (atomically) instead of
            keeping them in memory; memory then follows one range of users.
        bucket_rows: unsorted input larger than this is first laid out on disk into user
            buckets (user_id % n_buckets) of about this many rows, each sorted on its own,
            so that sorting needs memory for one bucket, not for the whole input.

    Returns:
        FeatureResult with features sorted by user_id.
    """
    if session_gap <= dt.timedelta(0):
        raise ConfigError(f"session_gap must be positive, got {session_gap}")
    scanned = scan_rules(
        dataset.events, on_bad_rows=on_bad_rows, declared_sorted=dataset.declared_sorted
    )
    categories = category_list(dataset.products)
    if scanned.ts_max is None or scanned.user_max is None:
        raise DataValidationError(f"{dataset.source}: no valid events left after validation")
    if as_of is None:
        as_of = scanned.ts_max
    elif as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)
    user_max = int(scanned.user_max)
    big_unsorted = (
        scanned.per_rule.get("unsorted", 0) > 0
        and not dataset.declared_sorted
        and scanned.rows_in > bucket_rows
    )
    scratch = None
    events: pl.LazyFrame | None = None
    if big_unsorted:  # sort bucket by bucket, in bounded memory
        scratch = tempfile.TemporaryDirectory(
            prefix=".ecomscale-buckets-", dir=_scratch_parent(out)
        )
        parts, report = _sorted_buckets(
            dataset.events, Path(scratch.name), scanned, bucket_rows, on_bad_rows, quarantine_dir
        )
    else:
        events, report = validate_events(
            dataset.events,
            on_bad_rows=on_bad_rows,
            quarantine_dir=quarantine_dir,
            declared_sorted=dataset.declared_sorted,
            scanned=scanned,
        )
        if report.resorted:  # small enough for one in-memory sort
            parts = [events]
        else:  # sorted input: user_id ranges, pushed down to the Parquet row groups
            parts = [
                events.filter((pl.col("user_id") >= lo) & (pl.col("user_id") < lo + range_users))
                for lo in range(0, user_max + 1, range_users)
            ]
    frames = []
    writer = _AtomicParquetWriter(Path(out)) if out is not None else None
    try:
        for done, part in enumerate(parts, start=1):
            features = user_features(
                part, dataset.products, categories=categories, as_of=as_of, session_gap=session_gap
            ).collect(engine="streaming")
            if writer is not None:
                writer.write(features)
            else:
                frames.append(features)
            if on_range is not None:
                on_range(done, len(parts))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if scratch is not None:
            scratch.cleanup()
    if writer is not None:
        writer.commit()
        return FeatureResult(None, report, as_of, categories)
    merged = pl.concat(frames).sort("user_id")
    clean = None if events is None else events.filter(pl.col("ts") <= as_of)
    return FeatureResult(merged, report, as_of, categories, clean)


def _scratch_parent(out: str | Path | None) -> Path | None:
    return Path(out).parent if out is not None else None


def _sorted_buckets(
    raw: pl.LazyFrame,
    folder: Path,
    scanned: RuleScan,
    bucket_rows: int,
    on_bad_rows: Policy,
    quarantine_dir: str | Path | None,
) -> tuple[list[pl.LazyFrame], ValidationReport]:
    """Lay unsorted events out into user buckets on disk, then validate each bucket sorted.

    A user's events all land in one bucket (user_id % n_buckets), so sorting and the order
    rules (duplicates after sorting) work bucket by bucket, in bounded memory.
    """
    n_buckets = max(2, -(-scanned.rows_in // bucket_rows))
    raw.with_columns((pl.col("user_id") % n_buckets).alias("_bucket")).sink_parquet(
        pl.PartitionBy(folder, key="_bucket", include_key=False), mkdir=True
    )
    parts: list[pl.LazyFrame] = []
    counts: dict[str, int] = {}
    for bucket in sorted(p for p in folder.iterdir() if p.is_dir()):
        qdir = Path(quarantine_dir) / bucket.name if quarantine_dir is not None else None
        clean, bucket_report = validate_events(
            pl.scan_parquet(bucket / "**" / "*.parquet"),
            on_bad_rows=on_bad_rows,
            quarantine_dir=qdir,
            declared_sorted=False,
        )
        parts.append(clean)  # read while the scratch folder exists (compute_features' loop)
        for rule, n in bucket_report.counts.items():
            counts[rule] = counts.get(rule, 0) + n
    counts = {rule: n for rule, n in sorted(counts.items()) if n}
    merged = ValidationReport(
        rows_in=scanned.rows_in,
        rows_out=scanned.rows_in - sum(counts.values()),
        counts=counts,
        resorted=True,
        ts_max=scanned.ts_max,
        user_max=scanned.user_max,
        quarantine_path=(
            Path(quarantine_dir)
            if quarantine_dir is not None and on_bad_rows == "quarantine" and counts
            else None
        ),
    )
    return parts, merged


class _AtomicParquetWriter:
    """Row groups appended to a temporary file that is renamed into place on commit."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        self._writer.write_table(table)

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.close()
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)


def write_parquet_atomic(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` through a temporary file and a rename."""
    writer = _AtomicParquetWriter(Path(path))
    try:
        writer.write(frame)
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return writer.path
