"""ReportData: everything the report shows, as small collected tables and formatted figures."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass
class ReportData:
    """Everything the report shows (collected, small tables)."""

    title: str
    kpis: dict[str, str]
    profiles: pl.DataFrame  # engine.segments.profile + segment_name, name_rule
    funnel: pl.DataFrame  # engine.insights.funnel
    session_funnel: pl.DataFrame
    category_preference: pl.DataFrame
    product_interest: pl.DataFrame
    viewed_not_bought: pl.DataFrame
    revenue: pl.DataFrame
    spearman: float | None
    k_scores: pl.DataFrame = field(default_factory=pl.DataFrame)
    ari: float | None = None
    contingency: pl.DataFrame | None = None
    notes: list[str] = field(default_factory=list)
    # How the segments were found: (what, how) rows, e.g. ("k", "k = 6: the best ...").
    method: list[tuple[str, str]] = field(default_factory=list)
    retention: pl.DataFrame | None = None  # engine.cohorts: cohort x period
    retention_by_segment: pl.DataFrame | None = None
    lifecycle: pl.DataFrame | None = None
    clv_by_segment: pl.DataFrame | None = None  # engine.clv: value per segment
    clv_holdout: pl.DataFrame | None = None  # predicted vs actual purchases by frequency
    clv_alive: pl.DataFrame | None = None  # P(alive) over frequency x recency
    predict_target: str | None = None  # engine.predict: "conversion" or "churn"
    predict_by_segment: pl.DataFrame | None = None  # score distribution per segment
    predict_calibration: pl.DataFrame | None = None  # predicted vs observed per score bin
    predict_lift: pl.DataFrame | None = None  # lift and capture at each top share
    predict_importance: pl.DataFrame | None = None  # permutation importance, top features
