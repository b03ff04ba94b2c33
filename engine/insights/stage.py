"""The insights stage: collect every insight table (small) and write ``insights/*.parquet``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.exceptions import ConfigError
from engine.features.sessions import DEFAULT_SESSION_GAP
from engine.insights.categories import category_preference
from engine.insights.funnel import (
    DEFAULT_CONVERSION_WINDOW,
    first_views,
    funnel,
    session_funnel,
)
from engine.insights.personas import persona_agreement
from engine.insights.products import (
    interest_rank_correlation,
    product_interest,
    viewed_not_bought,
)
from engine.insights.revenue import revenue_by_segment
from engine.io.atomic import write_parquet_atomic
from engine.io.dataset import Dataset
from engine.validation import Policy, parse_policy

# The feature columns the insights read (KPIs, revenue by segment).
INSIGHT_FEATURE_COLUMNS = ("user_id", "n_events", "n_purchases", "revenue")


@dataclass(frozen=True)
class InsightsConfig:
    """How the insights read the events (validated once, here).

    Attributes:
        on_bad_rows: the features stage's policy: bad rows are dropped unless "error".
        session_gap: session timeout of the session funnel.
        conversion_window: how long after the previous stage a funnel step still counts.
    """

    on_bad_rows: Policy = "error"
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP
    conversion_window: dt.timedelta = DEFAULT_CONVERSION_WINDOW

    def __post_init__(self) -> None:
        parse_policy(self.on_bad_rows)
        for name in ("session_gap", "conversion_window"):
            if getattr(self, name) <= dt.timedelta(0):
                raise ConfigError.out_of_range(name, "positive", getattr(self, name))


@dataclass
class Insights:
    """The insight tables, persona agreement (synthetic data) and headline figures."""

    tables: dict[str, pl.DataFrame]
    kpis: dict[str, str]
    users: int
    events: int
    ari: float | None = None
    contingency: pl.DataFrame | None = None
    spearman: float | None = None


def insight_tables(
    dataset: Dataset,
    events: pl.LazyFrame,
    features: pl.DataFrame,
    assignments: pl.DataFrame,
    config: InsightsConfig,
) -> dict[str, pl.DataFrame]:
    """Collect every insight table (small) for the report and the insights/ folder.

    Performance note: one query at a time, not ``collect_all``: run together, every table's
    state is alive at once and the shared scan buffers input for the slowest branch (more
    memory for the same time, measured at 10M events). Keep it.
    """
    collect = lambda query: query.collect(engine="streaming")  # noqa: E731
    # Small per-user tables the queries look up, read once here.
    views = collect(first_views(events))
    tables = {
        "funnel": collect(funnel(events, assignments, config.conversion_window, views)),
        "session_funnel": collect(session_funnel(events, assignments, config.session_gap)),
        "revenue_by_segment": collect(revenue_by_segment(features.lazy(), assignments.lazy())),
    }
    # Product interest is read once; two tables derive from it.
    interest = collect(product_interest(events, dataset.products))
    tables["product_interest"] = interest
    tables["viewed_not_bought"] = viewed_not_bought(interest.lazy()).collect()
    tables["interest_correlation"] = interest_rank_correlation(interest.lazy()).collect()
    if dataset.products is not None:
        products = dataset.products.select("product_id", "category").collect()
        tables["category_preference"] = collect(category_preference(events, products, assignments))
    return tables


def kpis(features: pl.DataFrame, k: int, ari: float | None) -> dict[str, str]:
    """The headline figures of a run, formatted for the report."""
    n_events = int(features["n_events"].sum())
    buyers = int((features["n_purchases"] > 0).sum())
    figures = {
        "users": f"{features.height:,}",
        "events": f"{n_events:,}",
        "buyers": f"{buyers / max(features.height, 1):.1%}",
        "revenue": f"{features['revenue'].sum():,.0f}",
        "segments": str(k),
    }
    if ari is not None:
        figures["persona ARI"] = f"{ari:.3f}"
    return figures


def insights_stage(
    dataset: Dataset,
    events: pl.LazyFrame,
    features: pl.DataFrame,
    assignments: pl.DataFrame,
    out: str | Path,
    config: InsightsConfig,
) -> Insights:
    """Compute the insights and write ``out/insights/*.parquet``.

    Args:
        dataset: for products and planted personas.
        events: the validated events up to as_of (lazy).
        features: at least INSIGHT_FEATURE_COLUMNS of every user.
        assignments: user_id, segment, segment_name.
        out: the run's output folder.
        config: see InsightsConfig.
    """
    folder = Path(out) / "insights"
    tables = insight_tables(dataset, events, features, assignments, config)
    for name, table in tables.items():
        write_parquet_atomic(table, folder / f"{name}.parquet")
    ari, contingency = None, None
    if dataset.truth is not None:
        ari, contingency = persona_agreement(assignments, dataset.truth.collect())
        write_parquet_atomic(contingency, folder / "persona_agreement.parquet")
    correlation = tables["interest_correlation"]["spearman"][0]
    k = assignments["segment"].n_unique()
    return Insights(
        tables,
        kpis(features, k, ari),
        features.height,
        int(features["n_events"].sum()),
        ari,
        contingency,
        None if correlation is None else float(correlation),
    )
