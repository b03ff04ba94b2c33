"""The features stage at the edge: validate, compute per user range, write atomically.

Sorted input is processed in user_id ranges: each range is a filter that the Parquet scan
pushes down to row-group statistics, so memory is bounded by the users of one range, not by
the number of events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import os
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from engine.exceptions import ConfigError, DataValidationError
from engine.features import DEFAULT_SESSION_GAP, user_features
from engine.loading import Dataset, bucket_events
from engine.schema import BUCKET_DIR, EVENT_TYPE, user_bucket
from engine.validation import (
    RULES,
    WHOLE_INPUT_RULES,
    Policy,
    RuleScan,
    ValidationReport,
    breaks_any_rule,
    clean_check,
    scan_rules,
    validate_events,
)

MAX_CATEGORIES = 200
DEFAULT_RANGE_USERS = 250_000
DEFAULT_BUCKET_ROWS = 5_000_000
_BROKEN, _TS_MAX = "_broken_rows", "_ts_max"  # the fused query's extra columns


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
            buckets of about this many rows, each sorted on its own, so that sorting needs
            memory for one bucket, not for the whole input. Sorted input up to this size is
            validated and featurised in one read (when it breaks no rule).

    Returns:
        FeatureResult with features sorted by user_id.
    """
    if session_gap <= dt.timedelta(0):
        raise ConfigError(f"session_gap must be positive, got {session_gap}")
    if as_of is not None and as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=dt.UTC)  # naive means UTC, on every path below
    if dataset.products is not None:
        # Read once: every range or bucket below needs it, and for foreign logs the products
        # table is itself a group-by over all the events.
        dataset = dataclasses.replace(dataset, products=dataset.products.collect().lazy())
    categories = category_list(dataset.products)
    if dataset.buckets:
        return _bucketed_features(
            dataset, categories, on_bad_rows, quarantine_dir, as_of, session_gap, on_range, out
        )
    if dataset.declared_sorted:
        checked = _features_if_clean(
            dataset, categories, as_of, session_gap, bucket_rows, range_users, on_range, out
        )
        if checked is not None:
            return checked
    scanned = scan_rules(
        dataset.events, on_bad_rows=on_bad_rows, declared_sorted=dataset.declared_sorted
    )
    if scanned.ts_max is None or scanned.user_max is None:
        raise DataValidationError(f"{dataset.source}: no valid events left after validation")
    as_of = resolve_as_of(as_of, scanned.ts_max)
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
        n_buckets = max(2, -(-scanned.rows_in // bucket_rows))
        buckets, report = sorted_buckets(
            dataset.events, Path(scratch.name), scanned, n_buckets, on_bad_rows, quarantine_dir
        )
        parts = list(buckets.values())
    else:
        events, report = validate_events(
            dataset.events,
            on_bad_rows=on_bad_rows,
            quarantine_dir=quarantine_dir,
            declared_sorted=dataset.declared_sorted,
            scanned=scanned,
        )
        # Resorted input was small enough for one in-memory sort; sorted input goes by ranges.
        parts = [events] if report.resorted else user_ranges(events, user_max, range_users)

    def compute(part: pl.LazyFrame) -> pl.DataFrame:
        return user_features(
            part, dataset.products, categories=categories, as_of=as_of, session_gap=session_gap
        ).collect(engine="streaming")

    try:
        merged = _collect_parts([functools.partial(compute, p) for p in parts], on_range, out)
    finally:
        if scratch is not None:
            scratch.cleanup()
    clean = None if events is None else events.filter(pl.col("ts") <= as_of)
    return FeatureResult(merged, report, as_of, categories, clean)


def _features_if_clean(
    dataset: Dataset,
    categories: list[str],
    as_of: dt.datetime | None,
    session_gap: dt.timedelta,
    max_rows: int,
    range_users: int,
    on_range: Callable[[int, int], None] | None,
    out: str | Path | None,
) -> FeatureResult | None:
    """Sorted input, clean: the rule checks ride along in the features queries instead of
    taking a pass of their own. Up to ``max_rows`` rows, validation and features are one
    query (one read of the files); larger input goes by user ranges (``_checked_ranges``).
    Returns None, having written nothing, when a rule is broken or the input is empty or of
    another kind; the caller then takes the usual path (which reports, drops or sorts).
    """
    if dataset.events.collect_schema()["event_type"] != EVENT_TYPE:  # may hold unknown types
        return None
    rows = dataset.events.select(pl.len()).collect().item()  # from Parquet footers
    if rows > max_rows and as_of is None:
        return _checked_ranges(dataset, categories, session_gap, range_users, on_range, out)
    if not 0 < rows <= max_rows:
        return None
    trusted = RuleScan(rows, {}, None, None)  # checked below, before anything is returned
    events, _ = validate_events(dataset.events, scanned=trusted)
    if as_of is None:
        # Every row reaches the per-user group-by, so the rule check rides along in it
        # (~15% less work than a second query over the same files).
        features = user_features(
            events.with_columns(breaks_any_rule().alias(_BROKEN)),
            dataset.products,
            categories=categories,
            session_gap=session_gap,
            extra_aggs=[pl.col(_BROKEN).sum(), pl.col("ts").max().alias(_TS_MAX)],
        ).collect(engine="streaming")
        broken, ts_max = features[_BROKEN].sum(), features[_TS_MAX].max()
        features = features.drop(_BROKEN, _TS_MAX)
        user_max = features["user_id"].max()
    else:  # events after as_of are left out of the features, yet must be checked too
        plan = user_features(
            events, dataset.products, categories=categories, as_of=as_of, session_gap=session_gap
        )
        features, check = pl.collect_all([plan, clean_check(dataset.events)], engine="streaming")
        broken, ts_max, user_max = (check[c][0] for c in ("broken", "ts_max", "user_max"))
    if broken != 0:
        return None
    assert isinstance(ts_max, dt.datetime) and isinstance(user_max, int)
    report = ValidationReport(rows, rows, ts_max=ts_max, user_max=user_max)
    as_of = resolve_as_of(as_of, ts_max)
    if out is not None:
        write_parquet_atomic(features, out)
    if on_range is not None:
        on_range(1, 1)
    clean = events.filter(pl.col("ts") <= as_of)
    return FeatureResult(None if out is not None else features, report, as_of, categories, clean)


def user_ranges(events: pl.LazyFrame, user_max: int, range_users: int) -> list[pl.LazyFrame]:
    """The events of users 0..user_max in ranges of ``range_users`` ids: filters that the
    Parquet scan pushes down to row-group statistics."""
    return [
        events.filter((pl.col("user_id") >= lo) & (pl.col("user_id") < lo + range_users))
        for lo in range(0, user_max + 1, range_users)
    ]


class _BrokenRange(Exception):
    """A user range of ``_checked_ranges`` holds a row that breaks a rule."""


def _checked_ranges(
    dataset: Dataset,
    categories: list[str],
    session_gap: dt.timedelta,
    range_users: int,
    on_range: Callable[[int, int], None] | None,
    out: str | Path | None,
) -> FeatureResult | None:
    """Large sorted input with the default as_of, by user_id ranges, in two passes instead
    of three: one over user_id and ts for the rules that a range cannot see (null ids or
    timestamps, order), which also gives the bounds; then each range's features query sums
    the other rules per user. Within sorted input a range's rows are consecutive, so its
    duplicate check sees the same neighbours as a check over the whole input. Returns None
    (and leaves ``out`` unwritten) at the first broken row.
    """
    whole = (
        clean_check(dataset.events, WHOLE_INPUT_RULES)
        .collect(engine="streaming")
        .row(0, named=True)
    )
    if whole["broken"] or not whole["rows"]:
        return None
    rows, ts_max, user_max = whole["rows"], whole["ts_max"], int(whole["user_max"])
    events, _ = validate_events(dataset.events, scanned=RuleScan(rows, {}, None, None))
    in_range = breaks_any_rule(set(RULES) - WHOLE_INPUT_RULES).alias(_BROKEN)

    def compute(part: pl.LazyFrame) -> pl.DataFrame:
        features = user_features(
            part.with_columns(in_range),
            dataset.products,
            categories=categories,
            as_of=ts_max,  # the largest ts: no row is left out unchecked
            session_gap=session_gap,
            extra_aggs=[pl.col(_BROKEN).sum()],
        ).collect(engine="streaming")
        if features[_BROKEN].sum():
            raise _BrokenRange
        return features.drop(_BROKEN)

    parts = [functools.partial(compute, p) for p in user_ranges(events, user_max, range_users)]
    try:
        merged = _collect_parts(parts, on_range, out)
    except _BrokenRange:
        return None
    report = ValidationReport(rows, rows, ts_max=ts_max, user_max=user_max)
    return FeatureResult(merged, report, ts_max, categories, events)


def resolve_as_of(as_of: dt.datetime | None, ts_max: dt.datetime) -> dt.datetime:
    """The reference time: ``as_of`` (naive means UTC), or the last valid event."""
    if as_of is None:
        return ts_max
    return as_of.replace(tzinfo=dt.UTC) if as_of.tzinfo is None else as_of


def _collect_parts(
    parts: Sequence[Callable[[], pl.DataFrame]],
    on_range: Callable[[int, int], None] | None,
    out: str | Path | None,
) -> pl.DataFrame | None:
    """Run each part; stream them to ``out`` atomically, or return them merged by user_id."""
    frames = []
    writer = _AtomicParquetWriter(Path(out)) if out is not None else None
    try:
        for done, part in enumerate(parts, start=1):
            features = part()
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
    if writer is not None:
        writer.commit()
        return None
    merged = pl.concat(frames)
    # User ranges come in order, each sorted: re-sorting them cost 60-200 ms per 1M users.
    return merged if merged["user_id"].is_sorted() else merged.sort("user_id")


def scan_bucket(files: tuple[Path, ...], on_bad_rows: Policy) -> RuleScan:
    """The validation scan of one bucket of the bucketed layout (raises under "error")."""
    return scan_rules(bucket_events(files), on_bad_rows=on_bad_rows, declared_sorted=True)


def bucket_features(
    files: tuple[Path, ...],
    products: pl.LazyFrame | None,
    scanned: RuleScan,
    *,
    categories: list[str],
    as_of: dt.datetime,
    session_gap: dt.timedelta,
    on_bad_rows: Policy,
    quarantine_dir: Path | None,
) -> tuple[pl.DataFrame, ValidationReport]:
    """Validate one bucket and compute the features of its users (sorted by user_id).

    The unit of work of the bucketed layout: the serial path loops over buckets, the Dask
    backend runs one task per bucket.
    """
    clean, report = validate_events(
        bucket_events(files),
        on_bad_rows=on_bad_rows,
        quarantine_dir=quarantine_dir,
        declared_sorted=True,
        scanned=scanned,
    )
    features = user_features(
        clean, products, categories=categories, as_of=as_of, session_gap=session_gap
    ).collect(engine="streaming")
    return features, report


def bucket_quarantine(quarantine_dir: str | Path | None, bucket: int) -> Path | None:
    """Where one bucket's rejected rows go."""
    return None if quarantine_dir is None else Path(quarantine_dir) / BUCKET_DIR.format(bucket)


def _bucketed_features(
    dataset: Dataset,
    categories: list[str],
    on_bad_rows: Policy,
    quarantine_dir: str | Path | None,
    as_of: dt.datetime | None,
    session_gap: dt.timedelta,
    on_range: Callable[[int, int], None] | None,
    out: str | Path | None,
) -> FeatureResult:
    """The serial path over the bucketed layout: scan every bucket, then features per bucket."""
    scans = {b: scan_bucket(files, on_bad_rows) for b, files in enumerate(dataset.buckets) if files}
    ts_max = max((s.ts_max for s in scans.values() if s.ts_max is not None), default=None)
    if ts_max is None:
        raise DataValidationError(f"{dataset.source}: no valid events left after validation")
    as_of = resolve_as_of(as_of, ts_max)
    reports: list[ValidationReport] = []

    def compute(bucket: int) -> pl.DataFrame:
        features, report = bucket_features(
            dataset.buckets[bucket],
            dataset.products,
            scans[bucket],
            categories=categories,
            as_of=as_of,
            session_gap=session_gap,
            on_bad_rows=on_bad_rows,
            quarantine_dir=bucket_quarantine(quarantine_dir, bucket),
        )
        reports.append(report)
        return features

    merged = _collect_parts([functools.partial(compute, b) for b in scans], on_range, out)
    report = merge_reports(reports, on_bad_rows, quarantine_dir, resorted=False)
    events = clean_events(dataset, on_bad_rows, as_of, scans)
    return FeatureResult(merged, report, as_of, categories, events)


def clean_events(
    dataset: Dataset,
    on_bad_rows: Policy,
    as_of: dt.datetime,
    scans: dict[int, RuleScan] | None = None,
) -> pl.LazyFrame:
    """The validated events up to ``as_of`` as a lazy plan, for the insights.

    Each user's events stay together and in ts order (bucket by bucket in the bucketed
    layout). Bad rows are dropped unless the policy is "error" (they were already reported
    by the features stage).
    """
    policy: Policy = "drop" if on_bad_rows != "error" else "error"
    if dataset.buckets:
        parts = [
            validate_events(
                bucket_events(files),
                on_bad_rows=policy,
                declared_sorted=True,
                scanned=None if scans is None else scans[b],
            )[0]
            for b, files in enumerate(dataset.buckets)
            if files
        ]
        events = pl.concat(parts)
    else:
        events, _ = validate_events(
            dataset.events, on_bad_rows=policy, declared_sorted=dataset.declared_sorted
        )
    return events.filter(pl.col("ts") <= as_of)


def merge_reports(
    reports: list[ValidationReport],
    on_bad_rows: Policy,
    quarantine_dir: str | Path | None,
    *,
    resorted: bool,
) -> ValidationReport:
    """One report for the whole input from the reports of its buckets."""
    counts: dict[str, int] = {}
    for bucket_report in reports:
        for rule, n in bucket_report.counts.items():
            counts[rule] = counts.get(rule, 0) + n
    counts = {rule: n for rule, n in sorted(counts.items()) if n}
    rows_in = sum(r.rows_in for r in reports)
    return ValidationReport(
        rows_in=rows_in,
        rows_out=rows_in - sum(counts.values()),
        counts=counts,
        resorted=resorted,
        ts_max=max((r.ts_max for r in reports if r.ts_max is not None), default=None),
        user_max=max((r.user_max for r in reports if r.user_max is not None), default=None),
        quarantine_path=(
            Path(quarantine_dir)
            if quarantine_dir is not None and on_bad_rows == "quarantine" and counts
            else None
        ),
    )


def _scratch_parent(out: str | Path | None) -> Path | None:
    return Path(out).parent if out is not None else None


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
