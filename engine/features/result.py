"""The features stage's configuration and result."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.exceptions import ConfigError
from engine.features.sessions import DEFAULT_SESSION_GAP
from engine.validation import Policy, ValidationReport, parse_policy

DEFAULT_RANGE_USERS = 250_000
DEFAULT_BUCKET_ROWS = 5_000_000


@dataclass(frozen=True)
class FeaturesConfig:
    """How to validate the events and compute the features (validated once, here).

    Attributes:
        on_bad_rows: "error", "drop" or "quarantine" (see engine.validation).
        quarantine_dir: folder for quarantine.parquet (needed for "quarantine").
        as_of: reference time (default: the largest ts); naive means UTC.
        session_gap: session timeout.
        range_users: users per range when processing sorted input range by range.
        bucket_rows: unsorted input larger than this is first laid out on disk into user
            buckets of about this many rows, each sorted on its own, so that sorting needs
            memory for one bucket, not for the whole input. Sorted input up to this size is
            validated and featurised in one read (when it breaks no rule).
    """

    on_bad_rows: Policy = "error"
    quarantine_dir: Path | None = None
    as_of: dt.datetime | None = None
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP
    range_users: int = DEFAULT_RANGE_USERS
    bucket_rows: int = DEFAULT_BUCKET_ROWS

    def __post_init__(self) -> None:
        parse_policy(self.on_bad_rows)
        if self.session_gap <= dt.timedelta(0):
            raise ConfigError.out_of_range("session_gap", "positive", self.session_gap)
        if self.range_users < 1:
            raise ConfigError.out_of_range("range_users", ">= 1", self.range_users)
        if self.bucket_rows < 0:
            raise ConfigError.out_of_range("bucket_rows", ">= 0", self.bucket_rows)
        if self.quarantine_dir is not None:
            object.__setattr__(self, "quarantine_dir", Path(self.quarantine_dir))
        if self.as_of is not None and self.as_of.tzinfo is None:
            object.__setattr__(self, "as_of", self.as_of.replace(tzinfo=dt.UTC))


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


def resolve_as_of(as_of: dt.datetime | None, ts_max: dt.datetime) -> dt.datetime:
    """The reference time: ``as_of`` (naive means UTC), or the last valid event."""
    if as_of is None:
        return ts_max
    return as_of.replace(tzinfo=dt.UTC) if as_of.tzinfo is None else as_of
