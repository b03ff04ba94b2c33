"""Retention cohorts and lifecycle: who comes back, by cohort and segment.

Pure lazy queries (``retention``, ``lifecycle``) with written definitions, and the stage
that collects them part by part and writes ``OUT/cohorts/*.parquet``.
"""

from engine.cohorts.lifecycle import STATUSES, lifecycle_counts, lifecycle_table
from engine.cohorts.retention import (
    active_periods,
    cohorts,
    period_start,
    retention_counts,
    retention_table,
    revenue_counts,
    user_periods,
)
from engine.cohorts.stage import CohortsConfig, CohortTables, cohort_tables, cohorts_stage

__all__ = [
    "STATUSES",
    "CohortTables",
    "CohortsConfig",
    "active_periods",
    "cohort_tables",
    "cohorts",
    "cohorts_stage",
    "lifecycle_counts",
    "lifecycle_table",
    "period_start",
    "retention_counts",
    "retention_table",
    "revenue_counts",
    "user_periods",
]
