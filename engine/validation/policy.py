"""Validation at the edge: apply the row rules (``engine.validation.rules``) with a policy.

Policies: ``error`` stops at the first broken rule with a one-line reason; ``drop`` removes
the rows and reports counts per rule; ``quarantine`` also writes them, with their rule, to
a Parquet file. Unsorted rows are never dropped: under drop/quarantine the events are sorted
(a Polars sort of the whole input; sorted input never pays for it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import polars as pl

from engine.exceptions import ConfigError, DataValidationError
from engine.io.atomic import sink_parquet_atomic
from engine.schema import EVENT_TYPE
from engine.validation.rules import RULES, clean_check, rule_counts, rule_expr, rule_message

Policy = Literal["error", "drop", "quarantine"]
POLICIES: tuple[str, ...] = ("error", "drop", "quarantine")


def parse_policy(value: str) -> Policy:
    """``value`` as a Policy, or a ConfigError naming the choices."""
    if value not in POLICIES:
        raise ConfigError.out_of_range("on_bad_rows", f"one of {POLICIES}", value)
    return cast(Policy, value)


@dataclass(frozen=True)
class ValidationReport:
    """What validation found and did."""

    rows_in: int
    rows_out: int
    counts: dict[str, int] = field(default_factory=dict)  # rule -> rows (0 rules omitted)
    resorted: bool = False
    quarantine_path: Path | None = None
    ts_max: dt.datetime | None = None  # largest ts among valid rows (before any resort)
    user_max: int | None = None  # largest user_id among valid rows

    @property
    def clean(self) -> bool:
        return not self.counts


def _counts(events: pl.LazyFrame) -> pl.DataFrame:
    """``rule_counts``, collected (one streaming pass, no file names)."""
    return rule_counts(events).collect(engine="streaming")


def _counts_by_file(events: pl.LazyFrame, rule: str) -> pl.DataFrame:
    """Rows breaking ``rule`` per file (a second pass, only to write an error message)."""
    return (
        events.select("_file", rule_expr())
        .filter(pl.col("_rule") == rule)
        .group_by("_rule", "_file")
        .agg(pl.len().alias("rows"))
        .collect(engine="streaming")
    )


@dataclass(frozen=True)
class RuleScan:
    """The counting pass: rows per broken rule and the bounds of the rows that are kept."""

    rows_in: int
    per_rule: dict[str, int]
    ts_max: dt.datetime | None
    user_max: int | None


def scan_rules(
    events: pl.LazyFrame, *, on_bad_rows: Policy = "error", declared_sorted: bool = True
) -> RuleScan:
    """A cheap streaming pass over the raw events, and a second one that counts rows per
    rule only when something is broken; raises what "error" or empty input must raise."""
    parse_policy(on_bad_rows)
    quick = clean_check(events).collect(engine="streaming").row(0, named=True)
    if quick["rows"] == 0:
        raise DataValidationError("no events in the input. Hint: check the path and filters")
    if quick["broken"] == 0:  # the usual case: one cheap pass
        return RuleScan(quick["rows"], {}, quick["ts_max"], quick["user_max"])
    counts = _counts(events)
    rows_in = int(counts["rows"].sum())
    per_rule = {
        rule: int(n)
        for rule, n in counts.filter(pl.col("_rule").is_not_null())
        .select("_rule", "rows")
        .iter_rows()
    }
    # Out-of-order rows are kept (sorted), so they count towards the bounds.
    kept = counts.filter(pl.col("_rule").is_null() | (pl.col("_rule") == "unsorted"))
    bounds = kept.select(pl.col("ts_max").max(), pl.col("user_max").max()).row(0, named=True)
    blocking = {r: n for r, n in per_rule.items() if declared_sorted or r != "unsorted"}
    if on_bad_rows == "error" and blocking:
        first = next(rule for rule in RULES if rule in blocking)
        raise DataValidationError(rule_message(first, _counts_by_file(events, first)))
    return RuleScan(rows_in, per_rule, bounds["ts_max"], bounds["user_max"])


def validate_events(
    events: pl.LazyFrame,
    *,
    on_bad_rows: Policy = "error",
    quarantine_dir: str | Path | None = None,
    declared_sorted: bool = True,
    scanned: RuleScan | None = None,
) -> tuple[pl.LazyFrame, ValidationReport]:
    """Check raw events against the rules and apply the policy.

    Args:
        events: raw events from ``load_dataset`` (contract names plus ``_file``).
        on_bad_rows: "error", "drop" or "quarantine".
        quarantine_dir: where quarantine.parquet goes (required for "quarantine").
        declared_sorted: the source promises (user_id, ts) order; if False, out-of-order
            input is sorted under every policy instead of being a broken rule.
        scanned: the result of ``scan_rules`` on the same events, if already run.

    Returns:
        Events in the contract schema (event_type as Enum, no ``_file``), and a report.

    Raises:
        DataValidationError: on empty input, or on any broken rule under "error".
    """
    if on_bad_rows == "quarantine" and quarantine_dir is None:
        raise ConfigError("on_bad_rows='quarantine' needs quarantine_dir")
    if scanned is None:
        scanned = scan_rules(events, on_bad_rows=on_bad_rows, declared_sorted=declared_sorted)
    rows_in = scanned.rows_in
    per_rule = dict(scanned.per_rule)
    resorted = per_rule.pop("unsorted", 0) > 0
    clean = events
    quarantine_path = None
    if per_rule or resorted:
        flagged = events.with_columns(rule_expr())
        if resorted:  # order rules are meaningless before sorting: check rows, sort, recheck
            row_rules = (
                pl.col("_rule").is_in(["unsorted", "duplicate_event"]) | pl.col("_rule").is_null()
            )
            bad = flagged.filter(~row_rules)
            ordered = (
                flagged.filter(row_rules).drop("_rule").sort("user_id", "ts", maintain_order=True)
            )
            reflagged = ordered.with_columns(rule_expr())
            bad = pl.concat([bad, reflagged.filter(pl.col("_rule").is_not_null())])
            clean = reflagged.filter(pl.col("_rule").is_null()).drop("_rule")
            bad_df = bad.collect(engine="streaming")
            per_rule = {rule: n for rule, n in bad_df.group_by("_rule").len().iter_rows() if n}
            per_rule = dict(sorted(per_rule.items()))
            if on_bad_rows == "error" and per_rule:  # e.g. duplicates that sorting revealed
                first = next(rule for rule in RULES if rule in per_rule)
                by_file = bad_df.filter(pl.col("_rule") == first).group_by("_rule", "_file")
                raise DataValidationError(rule_message(first, by_file.agg(pl.len().alias("rows"))))
            bad_lf = bad_df.lazy()
        else:
            clean = flagged.filter(pl.col("_rule").is_null()).drop("_rule")
            bad_lf = flagged.filter(pl.col("_rule").is_not_null())
        if on_bad_rows == "quarantine" and per_rule and quarantine_dir is not None:
            quarantine_path = _write_quarantine(bad_lf, Path(quarantine_dir))
    contract = clean.drop("_file")
    if contract.collect_schema()["event_type"] != EVENT_TYPE:  # strings from foreign data
        contract = contract.with_columns(pl.col("event_type").cast(pl.String).cast(EVENT_TYPE))
    report = ValidationReport(
        rows_in=rows_in,
        rows_out=rows_in - sum(per_rule.values()),
        counts=per_rule,
        resorted=resorted,
        quarantine_path=quarantine_path,
        ts_max=scanned.ts_max,
        user_max=scanned.user_max,
    )
    return contract, report


def _write_quarantine(bad: pl.LazyFrame, folder: Path) -> Path:
    target = folder / "quarantine.parquet"
    return sink_parquet_atomic(bad.with_columns(pl.col("event_type").cast(pl.String)), target)


def merge_reports(
    reports: list[ValidationReport],
    on_bad_rows: Policy,
    quarantine_dir: str | Path | None,
    *,
    resorted: bool,
) -> ValidationReport:
    """One report for the whole input from the reports of its parts (buckets)."""
    counts: dict[str, int] = {}
    for part_report in reports:
        for rule, n in part_report.counts.items():
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
