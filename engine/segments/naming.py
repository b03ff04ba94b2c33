"""Honest segment names: fixed rules over segment profiles, each name with its rule.

Rules are tried in order; the first that holds names the segment. "overall" means the mean
over all users (weighted by segment size). Names that repeat get the segment's top category.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import polars as pl

Profile = dict[str, float]
# Mean log of viewed price over the category's median price: ln(0.6), views at 60% of it.
BARGAIN_PRICE_INDEX = math.log(0.6)
Rule = tuple[str, str, Callable[[Profile, Profile], bool]]

RULES: tuple[Rule, ...] = (
    (
        "engaged non-buyers",
        "buyer share < 5% and events per user >= 2x overall",
        lambda s, o: s["buyer_share"] < 0.05 and s["n_events"] >= 2 * o["n_events"],
    ),
    (
        "lapsed",
        "days since last event >= 1.5x overall",
        lambda s, o: s["recency_days"] >= 1.5 * o["recency_days"],
    ),
    (
        "bargain hunters",
        "buyer share >= 30% and viewed prices at most 60% of their category's median",
        lambda s, o: s["buyer_share"] >= 0.3 and s["price_index"] <= BARGAIN_PRICE_INDEX,
    ),
    (
        "loyal high spenders",
        "buyer share >= 50%, >= 2 purchase sessions per user, revenue per user >= 2x overall",
        lambda s, o: (
            s["buyer_share"] >= 0.5
            and s["n_purchase_sessions"] >= 2
            and s["revenue"] >= 2 * o["revenue"]
        ),
    ),
    (
        "one-time buyers",
        "buyer share >= 50% and < 1.5 purchase sessions per user",
        lambda s, o: s["buyer_share"] >= 0.5 and s["n_purchase_sessions"] < 1.5,
    ),
    (
        "buyers",
        "buyer share >= 30%",
        lambda s, o: s["buyer_share"] >= 0.3,
    ),
    (
        "casual browsers",
        "buyer share < 5% and events per user <= overall",
        lambda s, o: s["buyer_share"] < 0.05 and s["n_events"] <= o["n_events"],
    ),
)
FALLBACK = ("mixed", "no rule matched")
KEYS = (
    *("buyer_share", "n_events", "recency_days"),
    *("n_purchase_sessions", "revenue", "price_index"),
)


def name_segments(profiles: pl.DataFrame) -> tuple[dict[int, str], dict[int, str]]:
    """Segment -> name and segment -> rule, from ``engine.segments.profile`` output."""
    weights = profiles["users"].cast(pl.Float64).to_numpy()
    overall = {
        key: float((profiles[key].cast(pl.Float64).to_numpy() * weights).sum() / weights.sum())
        for key in KEYS
    }
    names: dict[int, str] = {}
    rules: dict[int, str] = {}
    for row in profiles.iter_rows(named=True):
        stats = {key: float(row[key] or 0.0) for key in KEYS}
        name, rule = next(((n, r) for n, r, test in RULES if test(stats, overall)), FALLBACK)
        names[row["segment"]] = name
        rules[row["segment"]] = rule
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    for row in profiles.iter_rows(named=True):
        seg = row["segment"]
        if taken[names[seg]] > 1:
            names[seg] = f"{names[seg]} ({row['top_category'] or 'no views'}, #{seg})"
    return names, rules
