"""Validation at the edge: every event row is checked against the rules below, once.

Rules (the first one a row breaks is the one reported):

* null_user_id, null_ts, null_product_id, null_event_type: a required value is missing;
* unknown_event_type: event_type is not one of the contract's four;
* null_price, negative_price, non_finite_price: the price is missing, < 0, NaN or infinite;
* duplicate_event: the row repeats the previous row's (user_id, ts, event_type, product_id);
* unsorted: the row comes before the previous row in (user_id, ts) order.

Policies: ``error`` stops at the first broken rule with a one-line reason; ``drop`` removes
the rows and reports counts per rule; ``quarantine`` also writes them, with their rule, to
a Parquet file. Unsorted rows are never dropped: under drop/quarantine the events are sorted
(a Polars sort of the whole input; sorted input never pays for it).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from engine.exceptions import ConfigError, DataValidationError
from engine.schema import EVENT_TYPE, EVENT_TYPES

Policy = Literal["error", "drop", "quarantine"]
POLICIES: tuple[str, ...] = ("error", "drop", "quarantine")

# rule -> (column, what is wrong)
RULES: dict[str, tuple[str, str]] = {
    "null_user_id": ("user_id", "have no user_id"),
    "null_ts": ("ts", "have no timestamp (or one that does not parse)"),
    "null_product_id": ("product_id", "have no product_id"),
    "null_event_type": ("event_type", "have no event_type"),
    "unknown_event_type": ("event_type", f"are not one of {', '.join(EVENT_TYPES)}"),
    "null_price": ("price", "have no price"),
    "negative_price": ("price", "have a negative price"),
    "non_finite_price": ("price", "have a NaN or infinite price"),
    "duplicate_event": ("*", "repeat the previous event exactly"),
    "unsorted": ("ts", "are out of (user_id, ts) order"),
}
KEY = ("user_id", "ts", "event_type", "product_id")


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


def _checks() -> list[tuple[str, pl.Expr]]:
    """(rule, boolean expression true for the rows that break it), in RULES order."""
    event_type = pl.col("event_type")
    price = pl.col("price")
    same_as_prev = pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in KEY]).fill_null(
        False
    )
    user_prev = pl.col("user_id").shift(1)
    unsorted = (pl.col("user_id") < user_prev) | (
        (pl.col("user_id") == user_prev) & (pl.col("ts") < pl.col("ts").shift(1))
    )
    checks = [
        ("null_user_id", pl.col("user_id").is_null()),
        ("null_ts", pl.col("ts").is_null()),
        ("null_product_id", pl.col("product_id").is_null()),
        ("null_event_type", event_type.is_null()),
        # is_in straight on String, Categorical or Enum: a cast to String first costs ~40x.
        ("unknown_event_type", ~event_type.is_in(list(EVENT_TYPES))),
        ("null_price", price.is_null()),
        ("non_finite_price", ~price.is_finite()),
        ("negative_price", price < 0),
        ("duplicate_event", same_as_prev),
        ("unsorted", unsorted.fill_null(False)),
    ]
    return checks


def rule_expr() -> pl.Expr:
    """The first rule each row breaks, or null (assumes contract column names)."""
    checks = _checks()
    expr: Any = pl.when(checks[0][1]).then(pl.lit(checks[0][0]))
    for name, check in checks[1:]:
        expr = expr.when(check).then(pl.lit(name))
    return expr.otherwise(pl.lit(None, pl.String)).alias("_rule")


def rule_counts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per rule (null: no rule broken), with the ts and user_id bounds of each group."""
    return (
        events.select("ts", "user_id", rule_expr())
        .group_by("_rule")
        .agg(
            pl.len().alias("rows"),
            pl.col("ts").max().alias("ts_max"),
            pl.col("user_id").max().alias("user_max"),
        )
    )


# The rules a user_id range (or an as_of filter) cannot check: they need every row, in order.
WHOLE_INPUT_RULES = frozenset({"null_user_id", "null_ts", "unsorted"})


def breaks_any_rule(rules: Collection[str] = frozenset(RULES)) -> pl.Expr:
    """True for a row that breaks any of ``rules``: ~6x cheaper than ``rule_expr``, whose
    chain of rule names is only worth paying for once something is broken. A check that
    comes out null (a null input value) counts as broken, so this never calls a broken row
    clean."""
    return pl.any_horizontal([check for name, check in _checks() if name in rules]).fill_null(True)


def clean_check(events: pl.LazyFrame, rules: Collection[str] = frozenset(RULES)) -> pl.LazyFrame:
    """One row: ``rows``, ``broken`` (rows breaking any of ``rules``) and the ts / user_id
    bounds: the pass that clean input needs."""
    broken = breaks_any_rule(rules)
    # Two selects, not one: reduced side by side, the cheap maxima would race ahead of the
    # shift-heavy check, and the streaming engine buffers the input for the slower branch
    # (peak memory then grows with the input: 1.2 GB at 50M events instead of 0.4 GB).
    return events.select("ts", "user_id", broken.alias("broken")).select(
        pl.len().alias("rows"),
        pl.col("broken").sum(),
        pl.col("ts").max().alias("ts_max"),
        pl.col("user_id").max().alias("user_max"),
    )


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


def _message(rule: str, counts: pl.DataFrame) -> str:
    column, what = RULES[rule]
    rows = counts.filter(pl.col("_rule") == rule).sort("rows", descending=True)
    total = int(rows["rows"].sum())
    first_file = rows["_file"][0]
    more = f" (and {rows.height - 1} more files)" if rows.height > 1 else ""
    fix = (
        "sort the input by (user_id, ts), or pass --on-bad-rows drop to have it sorted"
        if rule == "unsorted"
        else "fix the source, or pass --on-bad-rows drop|quarantine to set such rows aside"
    )
    return f"{first_file}{more}: column {column}: {total} rows {what}. Hint: {fix}"


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
    if on_bad_rows not in POLICIES:
        raise ConfigError(f"on_bad_rows must be one of {POLICIES}, got {on_bad_rows!r}")
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
        raise DataValidationError(_message(first, _counts_by_file(events, first)))
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
                raise DataValidationError(_message(first, by_file.agg(pl.len().alias("rows"))))
            bad_lf = bad_df.lazy()
        else:
            clean = flagged.filter(pl.col("_rule").is_null()).drop("_rule")
            bad_lf = flagged.filter(pl.col("_rule").is_not_null())
        if on_bad_rows == "quarantine" and per_rule:
            quarantine_path = _write_quarantine(bad_lf, Path(quarantine_dir))  # type: ignore[arg-type]
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
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "quarantine.parquet"
    tmp = folder / f".quarantine.{uuid.uuid4().hex[:8]}.tmp"
    bad.with_columns(pl.col("event_type").cast(pl.String)).sink_parquet(tmp)
    os.replace(tmp, target)
    return target
