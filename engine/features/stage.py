"""The features stage at the edge: validate, compute per user range or bucket, write atomically.

Sorted input is processed in user_id ranges: each range is a filter that the Parquet scan
pushes down to row-group statistics, so memory is bounded by the users of one range, not by
the number of events.
"""

from __future__ import annotations

import datetime as dt
import functools
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from engine.exceptions import DataValidationError
from engine.features.behaviour import user_features
from engine.features.buckets import as_of_from_scans, bucket_features, clean_events, scan_bucket
from engine.features.categories import category_list
from engine.features.result import FeatureResult, FeaturesConfig, resolve_as_of
from engine.features.sessions import DEFAULT_SESSION_GAP
from engine.io.atomic import AtomicParquetWriter, write_parquet_atomic
from engine.io.dataset import Dataset
from engine.io.outofcore import bucket_quarantine, sorted_buckets
from engine.schema import EVENT_TYPE
from engine.validation import (
    RULES,
    WHOLE_INPUT_RULES,
    Policy,
    RuleScan,
    ValidationReport,
    breaks_any_rule,
    clean_check,
    merge_reports,
    scan_rules,
    validate_events,
)

_BROKEN, _TS_MAX = "_broken_rows", "_ts_max"  # the fused query's extra columns
Progress = Callable[[int, int], None]  # (parts done, parts in all)


def compute_features(
    dataset: Dataset,
    *,
    on_bad_rows: Policy = "error",
    quarantine_dir: str | Path | None = None,
    as_of: dt.datetime | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
    on_range: Progress | None = None,
    out: str | Path | None = None,
    **limits: int,
) -> FeatureResult:
    """Validate the events and compute user features (keyword form of ``features_stage``).

    Args:
        dataset: from ``load_dataset``.
        on_bad_rows, quarantine_dir, as_of, session_gap: see ``FeaturesConfig``.
        on_range: progress callback (ranges done, ranges total).
        out: write the features to this Parquet file range by range (atomically) instead of
            keeping them in memory; memory then follows one range of users.
        **limits: ``range_users`` and ``bucket_rows`` (see ``FeaturesConfig``).

    Returns:
        FeatureResult with features sorted by user_id.
    """
    config = FeaturesConfig(
        on_bad_rows=on_bad_rows,
        quarantine_dir=None if quarantine_dir is None else Path(quarantine_dir),
        as_of=as_of,
        session_gap=session_gap,
        **limits,
    )
    return features_stage(dataset, config, on_range=on_range, out=out)


def features_stage(
    dataset: Dataset,
    config: FeaturesConfig,
    *,
    on_range: Progress | None = None,
    out: str | Path | None = None,
) -> FeatureResult:
    """The features stage: validate, compute by user range or bucket, and write ``out``.

    Returns:
        FeatureResult with features sorted by user_id (None when written to ``out``).
    """
    # Read once, here at the edge: every range or bucket below needs it, and for foreign logs
    # the products table is itself a group-by over all the events.
    products = None if dataset.products is None else dataset.products.collect()
    categories = category_list(products)
    as_of, policy, quarantine_dir = config.as_of, config.on_bad_rows, config.quarantine_dir
    if dataset.buckets:
        return _bucketed_features(dataset, products, categories, config, on_range, out)
    if dataset.declared_sorted:
        checked = _features_if_clean(dataset, products, categories, config, on_range, out)
        if checked is not None:
            return checked
    scanned = scan_rules(
        dataset.events, on_bad_rows=policy, declared_sorted=dataset.declared_sorted
    )
    if scanned.ts_max is None or scanned.user_max is None:
        raise DataValidationError(f"{dataset.source}: no valid events left after validation")
    as_of = resolve_as_of(as_of, scanned.ts_max)
    user_max = int(scanned.user_max)
    big_unsorted = (
        scanned.per_rule.get("unsorted", 0) > 0
        and not dataset.declared_sorted
        and scanned.rows_in > config.bucket_rows
    )
    scratch = None
    events: pl.LazyFrame | None = None
    if big_unsorted:  # sort bucket by bucket, in bounded memory
        scratch = tempfile.TemporaryDirectory(
            prefix=".ecomscale-buckets-", dir=None if out is None else Path(out).parent
        )
        n_buckets = max(2, -(-scanned.rows_in // config.bucket_rows))
        buckets, report = sorted_buckets(
            dataset.events, Path(scratch.name), scanned, n_buckets, policy, quarantine_dir
        )
        parts = list(buckets.values())
    else:
        events, report = validate_events(
            dataset.events,
            on_bad_rows=policy,
            quarantine_dir=quarantine_dir,
            declared_sorted=dataset.declared_sorted,
            scanned=scanned,
        )
        # Resorted input was small enough for one in-memory sort; sorted input goes by ranges.
        parts = [events] if report.resorted else user_ranges(events, user_max, config.range_users)

    def compute(part: pl.LazyFrame) -> pl.DataFrame:
        return user_features(
            part, products, categories=categories, as_of=as_of, session_gap=config.session_gap
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
    products: pl.DataFrame | None,
    categories: list[str],
    config: FeaturesConfig,
    on_range: Progress | None,
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
    as_of, session_gap, max_rows = config.as_of, config.session_gap, config.bucket_rows
    rows = dataset.events.select(pl.len()).collect().item()  # from Parquet footers
    if rows > max_rows and as_of is None:
        return _checked_ranges(
            dataset, products, categories, session_gap, config.range_users, on_range, out
        )
    if not 0 < rows <= max_rows:
        return None
    trusted = RuleScan(rows, {}, None, None)  # checked below, before anything is returned
    events, _ = validate_events(dataset.events, scanned=trusted)
    if as_of is None:
        # Every row reaches the per-user group-by, so the rule check rides along in it
        # (less work than a second query over the same files).
        features = user_features(
            events.with_columns(breaks_any_rule().alias(_BROKEN)),
            products,
            categories=categories,
            session_gap=session_gap,
            extra_aggs=[pl.col(_BROKEN).sum(), pl.col("ts").max().alias(_TS_MAX)],
        ).collect(engine="streaming")
        broken, ts_max = features[_BROKEN].sum(), features[_TS_MAX].max()
        features = features.drop(_BROKEN, _TS_MAX)
        user_max = features["user_id"].max()
    else:  # events after as_of are left out of the features, yet must be checked too
        plan = user_features(
            events, products, categories=categories, as_of=as_of, session_gap=session_gap
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
    products: pl.DataFrame | None,
    categories: list[str],
    session_gap: dt.timedelta,
    range_users: int,
    on_range: Progress | None,
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
            products,
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


def _collect_parts(
    parts: Sequence[Callable[[], pl.DataFrame]],
    on_range: Progress | None,
    out: str | Path | None,
) -> pl.DataFrame | None:
    """Run each part; stream them to ``out`` atomically, or return them merged by user_id."""
    frames = []
    writer = AtomicParquetWriter(out) if out is not None else None
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
    # User ranges come in order, each sorted: a re-sort would only cost time.
    return merged if merged["user_id"].is_sorted() else merged.sort("user_id")


def _bucketed_features(
    dataset: Dataset,
    products: pl.DataFrame | None,
    categories: list[str],
    config: FeaturesConfig,
    on_range: Progress | None,
    out: str | Path | None,
) -> FeatureResult:
    """The serial path over the bucketed layout: scan every bucket, then features per bucket
    (the units of work the Dask backend runs as tasks)."""
    policy, quarantine_dir = config.on_bad_rows, config.quarantine_dir
    scans = {b: scan_bucket(files, policy) for b, files in enumerate(dataset.buckets) if files}
    as_of = as_of_from_scans(scans.values(), config.as_of, dataset.source)
    reports: list[ValidationReport] = []

    def compute(bucket: int) -> pl.DataFrame:
        features, report = bucket_features(
            dataset.buckets[bucket],
            products,
            scans[bucket],
            categories=categories,
            as_of=as_of,
            session_gap=config.session_gap,
            on_bad_rows=policy,
            quarantine_dir=bucket_quarantine(quarantine_dir, bucket),
        )
        reports.append(report)
        return features

    merged = _collect_parts([functools.partial(compute, b) for b in scans], on_range, out)
    report = merge_reports(reports, policy, quarantine_dir, resorted=False)
    events = clean_events(dataset, policy, as_of, scans)
    return FeatureResult(merged, report, as_of, categories, events)
