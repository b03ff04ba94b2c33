"""The row rules, declared once as Polars expressions (rule -> column, what is wrong).

Rules (the first one a row breaks is the one reported):

* null_user_id, null_ts, null_product_id, null_event_type: a required value is missing;
* unknown_event_type: event_type is not one of the contract's four;
* null_price, negative_price, non_finite_price: the price is missing, < 0, NaN or infinite;
* duplicate_event: the row repeats the previous row's (user_id, ts, event_type, product_id);
* unsorted: the row comes before the previous row in (user_id, ts) order.

Pure expressions and lazy queries; nothing is collected here.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import polars as pl

from engine.schema import EVENT_TYPES

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


def rule_checks() -> list[tuple[str, pl.Expr]]:
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
        # is_in straight on String, Categorical or Enum: a cast to String first costs far more.
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
    checks = rule_checks()
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
    """True for a row that breaks any of ``rules``: much cheaper than ``rule_expr``, whose
    chain of rule names is only worth paying for once something is broken. A check that
    comes out null (a null input value) counts as broken, so this never calls a broken row
    clean."""
    return pl.any_horizontal([check for name, check in rule_checks() if name in rules]).fill_null(
        True
    )


def clean_check(events: pl.LazyFrame, rules: Collection[str] = frozenset(RULES)) -> pl.LazyFrame:
    """One row: ``rows``, ``broken`` (rows breaking any of ``rules``) and the ts / user_id
    bounds: the pass that clean input needs."""
    broken = breaks_any_rule(rules)
    # Two selects, not one: reduced side by side, the cheap maxima would race ahead of the
    # shift-heavy check, and the streaming engine buffers the input for the slower branch
    # (peak memory then grows with the input; checked at 50M events). Keep two selects.
    return events.select("ts", "user_id", broken.alias("broken")).select(
        pl.len().alias("rows"),
        pl.col("broken").sum(),
        pl.col("ts").max().alias("ts_max"),
        pl.col("user_id").max().alias("user_max"),
    )


def rule_message(rule: str, counts: pl.DataFrame) -> str:
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
