"""One stage on its own, as the commands ``ecomscale report``, ``cohorts``, ``clv`` and
``predict`` run it:
validate the events, call the stage, write under the given folder. The whole run is
``engine.pipeline``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from engine.clv import ClvConfig, ClvResult, clv_stage
from engine.cohorts import CohortsConfig, CohortTables, cohorts_stage
from engine.exceptions import DataValidationError
from engine.features.buckets import clean_event_parts, clean_events
from engine.features.result import DEFAULT_RANGE_USERS
from engine.features.stage import user_ranges
from engine.insights import Insights
from engine.insights.stage import INSIGHT_FEATURE_COLUMNS
from engine.io.dataset import Dataset, require_file_columns
from engine.pipeline import RunConfig, UserTables, insights_and_report
from engine.predict import PredictConfig, PredictResult, predict_stage
from engine.segments import profiles_from_file
from engine.validation import Policy

SEGMENT_HINT = "make them with `ecomscale segment`"


def report_from_files(
    dataset: Dataset,
    features_path: Path,
    segments_path: Path,
    out: Path,
    config: RunConfig,
    as_of: dt.datetime | None = None,
) -> tuple[Insights, Path]:
    """The insights and the report from earlier features and segments files (``ecomscale
    report``): the profiles stream over the features file, and only the columns the KPIs
    and the revenue table need are held in memory."""
    hint = "compute them with `ecomscale features`"
    require_file_columns(features_path, (*INSIGHT_FEATURE_COLUMNS, "top_category"), hint)
    require_file_columns(segments_path, ("user_id", "segment", "segment_name"), SEGMENT_HINT)
    assignments = pl.read_parquet(segments_path)
    users = UserTables(
        pl.read_parquet(features_path, columns=list(INSIGHT_FEATURE_COLUMNS)),
        assignments,
        profiles_from_file(features_path, assignments),
        pl.DataFrame(),
        [("segments", f"read from {segments_path}")],
    )
    if as_of is None:  # the last event of the input, as the features stage defaults to
        as_of = dataset.events.select(pl.col("ts").max()).collect().item()
    events = clean_events(dataset, config.insights.on_bad_rows, as_of)
    return insights_and_report(dataset, events, users, as_of, None, out, config)


def _segment_names(path: Path | None) -> pl.DataFrame | None:
    """user_id and segment_name from a segments file (its columns checked), or None."""
    if path is None:
        return None
    require_file_columns(path, ("user_id", "segment_name"), SEGMENT_HINT)
    return pl.read_parquet(path, columns=["user_id", "segment_name"])


def cohorts_from_data(
    dataset: Dataset,
    config: CohortsConfig,
    out: Path,
    segments_path: Path | None = None,
    as_of: dt.datetime | None = None,
) -> CohortTables:
    """The cohorts stage on its own (``ecomscale cohorts``): validate the events, then
    retention and lifecycle user range by user range, written under ``out``."""
    segments = _segment_names(segments_path)
    until = as_of or dt.datetime.max.replace(tzinfo=dt.UTC)
    events = clean_events(dataset, config.on_bad_rows, until)
    bounds = events.select(pl.col("ts").max(), pl.col("user_id").max()).collect(engine="streaming")
    last_ts, user_max = bounds.row(0)
    if last_ts is None:
        raise DataValidationError(f"{dataset.source}: no events up to {until:%Y-%m-%d %H:%M}")
    if dataset.buckets:
        parts = clean_event_parts(dataset, config.on_bad_rows, until)
    else:
        parts = user_ranges(events, int(user_max), DEFAULT_RANGE_USERS)
    return cohorts_stage(parts, as_of or last_ts, config, out, segments)


def clv_from_data(dataset: Dataset, config: ClvConfig, out: Path, on_bad_rows: Policy) -> ClvResult:
    """The CLV stage on its own (``ecomscale clv``): validate the events (all of them: those
    after ``as_of`` are the holdout), fit, predict, write under ``out``."""
    events = clean_events(dataset, on_bad_rows, dt.datetime.max.replace(tzinfo=dt.UTC))
    return clv_stage(events, config, out)


def predict_from_data(
    dataset: Dataset,
    config: PredictConfig,
    out: Path,
    on_bad_rows: Policy,
    segments_path: Path | None = None,
    range_users: int = DEFAULT_RANGE_USERS,
) -> PredictResult:
    """The prediction stage on its own (``ecomscale predict``): validate the events (all of
    them: those after the cutoff are the labels), then snapshots user range by user range
    (``range_users`` ids at a time) or bucket by bucket."""
    segments = _segment_names(segments_path)
    until = dt.datetime.max.replace(tzinfo=dt.UTC)
    if dataset.buckets:
        parts = clean_event_parts(dataset, on_bad_rows, until)
    else:
        events = clean_events(dataset, on_bad_rows, until)
        user_max = events.select(pl.col("user_id").max()).collect(engine="streaming").item()
        if user_max is None:
            raise DataValidationError(f"{dataset.source}: no events to predict from")
        parts = user_ranges(events, int(user_max), range_users)
    products = None if dataset.products is None else dataset.products.collect()
    return predict_stage(parts, config, out, products, segments, dataset.user_keys)
