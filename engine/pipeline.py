"""The stages in order: features -> segments -> insights, cohorts, CLV, prediction -> report.
No computation of its own: each stage computes and writes; this module builds their
configurations and passes results on.

Every output is written atomically. ``run_pipeline`` is what ``ecomscale run`` calls.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from engine.clv import ClvConfig, ClvResult, clv_note, clv_stage, clv_tables
from engine.cohorts import CohortsConfig, CohortTables, cohorts_stage
from engine.exceptions import DataValidationError, ModelFitError
from engine.features import FeaturesConfig, features_stage
from engine.features.buckets import clean_event_parts, clean_events
from engine.features.result import DEFAULT_RANGE_USERS
from engine.features.sessions import DEFAULT_SESSION_GAP
from engine.features.stage import user_ranges
from engine.insights import DEFAULT_CONVERSION_WINDOW, Insights, InsightsConfig, insights_stage
from engine.io.atomic import write_parquet_atomic
from engine.io.dataset import Dataset, load_dataset
from engine.predict import PredictConfig, PredictResult, predict_stage
from engine.predict.summary import predict_note, predict_tables
from engine.report import ReportData, write_report
from engine.segments import (
    Segmentation,
    SegmentConfig,
    segment,
    write_segmentation,
)
from engine.segments.prepare import Space
from engine.validation import Policy, ValidationReport

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunConfig:
    """The configuration of every stage of a run (each validated by its own class)."""

    features: FeaturesConfig = FeaturesConfig()
    segments: SegmentConfig = SegmentConfig()
    insights: InsightsConfig = InsightsConfig()
    cohorts: CohortsConfig = CohortsConfig()
    clv: ClvConfig = ClvConfig()
    predict: PredictConfig = PredictConfig()

    @classmethod
    def build(
        cls,
        out: Path,
        *,
        k: int | Literal["auto"] = "auto",
        seed: int = 0,
        space: Space = "behaviour",
        on_bad_rows: Policy = "error",
        as_of: dt.datetime | None = None,
        session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
        conversion_window: dt.timedelta = DEFAULT_CONVERSION_WINDOW,
    ) -> RunConfig:
        """One run's configuration; rejected rows go to ``out/quarantine``."""
        return cls(
            FeaturesConfig(on_bad_rows, out / "quarantine", as_of, session_gap),
            SegmentConfig(k, seed, space),
            InsightsConfig(on_bad_rows, session_gap, conversion_window),
            CohortsConfig(on_bad_rows=on_bad_rows),
            ClvConfig(as_of=as_of),
            PredictConfig(session_gap=session_gap, seed=seed),
        )


@dataclass
class RunResult:
    """Paths written, headline figures and per-stage seconds."""

    out_dir: Path
    users: int
    events: int
    segments: dict[int, str]
    ari: float | None
    timings: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    method: list[tuple[str, str]] = field(default_factory=list)  # how segments were found


@contextmanager
def _timed(timings: dict[str, float], name: str, on_stage: Progress | None) -> Iterator[None]:
    if on_stage:
        on_stage(name)
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start


def run_pipeline(
    data: str | Path | Dataset,
    out_dir: str | Path,
    *,
    k: int | Literal["auto"] = "auto",
    seed: int = 0,
    on_bad_rows: Policy = "error",
    as_of: dt.datetime | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
    conversion_window: dt.timedelta = DEFAULT_CONVERSION_WINDOW,
    on_stage: Progress | None = None,
    client: Any = None,
) -> RunResult:
    """Run features, segments, insights and the report; write everything under ``out_dir``
    (keyword form of ``run_stages``; the arguments are those of the stage configurations).

    With a Dask ``client`` (engine.distributed.connect), features and K-Means run on the
    cluster (the dataset must be in the bucketed layout); the outputs are the same.
    """
    out = Path(out_dir)
    config = RunConfig.build(
        out,
        k=k,
        seed=seed,
        on_bad_rows=on_bad_rows,
        as_of=as_of,
        session_gap=session_gap,
        conversion_window=conversion_window,
    )
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    return run_stages(dataset, out, config, on_stage=on_stage, client=client)


def run_stages(
    dataset: Dataset,
    out: Path,
    config: RunConfig,
    *,
    on_stage: Progress | None = None,
    client: Any = None,
) -> RunResult:
    """Every stage in order; writes features.parquet, segments.parquet,
    segment_profiles.parquet, insights/*.parquet and report.html under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with _timed(timings, "features", on_stage):
        if client is None:
            result = features_stage(dataset, config.features)
        else:
            from engine.distributed import features_stage_distributed

            on_cluster = features_stage_distributed(client, dataset, config.features)
            result = dataclasses.replace(on_cluster.result, features=on_cluster.gather())
        assert result.features is not None  # kept in memory: no ``out`` was given
        write_parquet_atomic(result.features, out / "features.parquet")

    with _timed(timings, "segments", on_stage):
        if client is None:
            seg = segment(
                result.features,
                k=config.segments.k,
                seed=config.segments.seed,
                space=config.segments.space,
            )
        else:
            from engine.distributed import segment_distributed

            seg = segment_distributed(
                client,
                on_cluster.parts,
                k=config.segments.k,
                seed=config.segments.seed,
                space=config.segments.space,
            )
        write_segmentation(seg, out / "segments.parquet", out / "segment_profiles.parquet")

    users = UserTables(
        result.features, seg.assignments, seg.profiles, seg.k_scores, segment_method(seg)
    )
    events = result.events
    with _timed(timings, "insights, cohorts, CLV, prediction, report", on_stage):
        if events is None:  # features streamed from ranges: validate the events once here
            events = clean_events(dataset, config.insights.on_bad_rows, result.as_of)
        found, report = insights_and_report(
            dataset,
            events,
            users,
            result.as_of,
            result.report,
            out,
            config,
            client,
        )
    return RunResult(
        out, found.users, found.events, seg.names, found.ari, timings, report, users.method
    )


@dataclass(frozen=True)
class UserTables:
    """The per-user and per-segment tables the insights and the report read.

    Attributes:
        features: at least INSIGHT_FEATURE_COLUMNS of every user.
        assignments: user_id, segment, segment_name.
        profiles: one row per segment (``Segmentation.profiles``).
        k_scores: the k search's scores (empty when k was given).
        method: how the segments were found, (what, how) rows for the report.
    """

    features: pl.DataFrame
    assignments: pl.DataFrame
    profiles: pl.DataFrame
    k_scores: pl.DataFrame
    method: list[tuple[str, str]]


def segment_method(seg: Segmentation) -> list[tuple[str, str]]:
    """How the segments were found, in words, for the report."""
    shares = sum(c.startswith("share_") for c in seg.columns)
    behaviour = [c for c in seg.columns if not c.startswith("share_")]
    space = ", ".join(behaviour) + (f", and {shares} category shares" if shares else "")
    rows = [
        (
            "features",
            f"K-Means (engine.MiniBatchKMeans) on {space}; log-scaled, shrunk and "
            "standardised (README: Segments)",
        ),
        ("k", seg.why_k),
    ]
    if seg.stability is not None:
        rows.append(
            (
                "stability",
                f"mean pairwise ARI {seg.stability:.3f} across five seeds of the "
                "chosen k (1 = the same segments whatever the seed)",
            )
        )
    return rows


def insights_and_report(
    dataset: Dataset,
    events: pl.LazyFrame,
    users: UserTables,
    as_of: dt.datetime,
    validation: ValidationReport | None,
    out: Path,
    config: RunConfig,
    client: Any = None,
) -> tuple[Insights, Path]:
    """The insights, cohorts, CLV and prediction stages, then the report over what they
    found (``validation``: what the features stage found, None when it ran earlier; with a
    Dask ``client``, the cohorts run one task per bucket)."""
    found = insights_stage(dataset, events, users.features, users.assignments, out, config.insights)
    parts = _user_parts(dataset, events, users.features, as_of, config.cohorts)
    if client is not None and dataset.buckets:
        from engine.distributed.cohorts import cohorts_stage_distributed

        cohort = cohorts_stage_distributed(
            client, dataset, as_of, config.cohorts, out / "cohorts", users.assignments
        )
    else:
        cohort = cohorts_stage(parts, as_of, config.cohorts, out / "cohorts", users.assignments)
    try:
        value: ClvResult | str = clv_stage(events, config.clv, out / "clv", users.assignments)
    except ModelFitError as error:  # e.g. nobody bought twice: the report says so
        value = str(error)
    products = None if dataset.products is None else dataset.products.collect()
    try:
        scored: PredictResult | str = predict_stage(
            parts, config.predict, out / "predict", products, users.assignments, dataset.user_keys
        )
    except (ModelFitError, DataValidationError) as error:  # e.g. a log shorter than 2H
        scored = str(error)
    data = report_data(dataset, found, users, as_of, validation, config.insights, cohort, value)
    data.notes.append(predict_note(scored))
    for name, table in predict_tables(scored).items():
        setattr(data, name, table)
    return found, write_report(data, out / "report.html")


def _user_parts(
    dataset: Dataset,
    events: pl.LazyFrame,
    features: pl.DataFrame,
    as_of: dt.datetime,
    config: CohortsConfig,
) -> list[pl.LazyFrame]:
    """User-disjoint parts of the events for the cohorts and the prediction: buckets, or user
    ranges (filters the Parquet scan pushes down), so memory follows one part's users."""
    if dataset.buckets:
        return clean_event_parts(dataset, config.on_bad_rows, as_of)
    user_max = features["user_id"].max()
    if isinstance(user_max, int):
        return user_ranges(events, user_max, DEFAULT_RANGE_USERS)
    return [events]


def report_data(
    dataset: Dataset,
    found: Insights,
    users: UserTables,
    as_of: dt.datetime,
    validation: ValidationReport | None,
    config: InsightsConfig,
    cohort: CohortTables | None = None,
    value: ClvResult | str | None = None,
) -> ReportData:
    """What the report shows, from the stages' results (wiring and wording only; ``value``:
    the CLV stage's result, or why it could not fit)."""
    notes = [
        f"Source: {dataset.source}. as_of = {as_of:%Y-%m-%d %H:%M} UTC; session gap "
        f"{config.session_gap}; conversion window {config.conversion_window}.",
        "Validation: "
        + (
            "all rows passed."
            if validation is None or validation.clean
            else ", ".join(f"{rule}: {n:,} rows" for rule, n in validation.counts.items())
            + f" (policy {config.on_bad_rows})."
        ),
        "Segments: K-Means on the behavioural space described above; names come from fixed "
        "rules over the profiles (see the table).",
        clv_note(value),
    ]
    tables = found.tables
    no_categories = pl.DataFrame(
        schema={"segment_name": pl.String, "category": pl.String, "lift": pl.Float64}
    )
    return ReportData(
        title=f"ecomscale report — {Path(dataset.source).name}",
        kpis=found.kpis,
        profiles=users.profiles,
        funnel=tables["funnel"],
        session_funnel=tables["session_funnel"],
        category_preference=tables.get("category_preference", no_categories),
        product_interest=tables["product_interest"],
        viewed_not_bought=tables["viewed_not_bought"],
        revenue=tables["revenue_by_segment"],
        spearman=found.spearman,
        k_scores=users.k_scores,
        ari=found.ari,
        contingency=found.contingency,
        notes=notes,
        method=users.method,
        retention=None if cohort is None else cohort.retention,
        retention_by_segment=None if cohort is None else cohort.by_segment,
        lifecycle=None if cohort is None else cohort.lifecycle,
        **clv_tables(value),
    )
