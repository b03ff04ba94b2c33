"""The units of work of the bucketed layout, shared by the serial loop and the Dask tasks.

A bucket holds every event of its users (placed by the stable user hash), sorted by
(user_id, ts), so validation and features run bucket by bucket with nothing shared.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from engine.exceptions import DataValidationError
from engine.features.behaviour import user_features
from engine.features.result import resolve_as_of
from engine.io.dataset import Dataset, bucket_events
from engine.validation import Policy, RuleScan, ValidationReport, scan_rules, validate_events


def scan_bucket(files: tuple[Path, ...], on_bad_rows: Policy) -> RuleScan:
    """The validation scan of one bucket of the bucketed layout (raises under "error")."""
    return scan_rules(bucket_events(files), on_bad_rows=on_bad_rows, declared_sorted=True)


def as_of_from_scans(
    scans: Iterable[RuleScan], as_of: dt.datetime | None, source: Path
) -> dt.datetime:
    """The reference time from the buckets' scans (their largest valid ts, unless given).

    Raises:
        DataValidationError: when no bucket kept a valid event.
    """
    ts_max = max((s.ts_max for s in scans if s.ts_max is not None), default=None)
    if ts_max is None:
        raise DataValidationError(f"{source}: no valid events left after validation")
    return resolve_as_of(as_of, ts_max)


def bucket_features(
    files: tuple[Path, ...],
    products: pl.DataFrame | None,
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


def clean_event_parts(
    dataset: Dataset,
    on_bad_rows: Policy,
    as_of: dt.datetime,
    scans: dict[int, RuleScan] | None = None,
) -> list[pl.LazyFrame]:
    """The validated events up to ``as_of`` as lazy plans of user-disjoint parts: one per
    bucket in the bucketed layout, else one for the whole input (``clean_events``)."""
    if not dataset.buckets:
        return [clean_events(dataset, on_bad_rows, as_of)]
    policy: Policy = "drop" if on_bad_rows != "error" else "error"
    return [
        validate_events(
            bucket_events(files),
            on_bad_rows=policy,
            declared_sorted=True,
            scanned=None if scans is None else scans[b],
        )[0].filter(pl.col("ts") <= as_of)
        for b, files in enumerate(dataset.buckets)
        if files
    ]


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
    if dataset.buckets:
        return pl.concat(clean_event_parts(dataset, on_bad_rows, as_of, scans))
    policy: Policy = "drop" if on_bad_rows != "error" else "error"
    events, _ = validate_events(
        dataset.events, on_bad_rows=policy, declared_sorted=dataset.declared_sorted
    )
    return events.filter(pl.col("ts") <= as_of)
