"""Per-row lookups of small per-id tables through an array indexed by id, not a join."""

from __future__ import annotations

import polars as pl

# Ids below this (product ids, user ids) are looked up in an array indexed by id instead of
# joined: the array costs 2 to 4 bytes per slot.
MAX_LOOKUP_KEY = 1 << 24


def dense_lookup(
    keys: pl.Series, values: pl.Series, key: pl.Expr, default: str | int | None = None
) -> pl.Expr | None:
    """``values[keys == key]`` for every row, through an array indexed by key. Keys absent
    from ``keys`` give ``default`` (null unless given).

    Performance note: on the streaming engine a gather from a literal array is much cheaper
    than a hash join of the same table; keep it for per-event lookups (checked on 18M-event
    logs against the join, which ``tests/test_features.py`` keeps as the reference).

    None when ``keys`` are not unsigned integers below MAX_LOOKUP_KEY, or are empty: the
    caller joins instead.
    """
    top = keys.max() if keys.dtype.is_unsigned_integer() else None
    if not isinstance(top, int) or top >= MAX_LOOKUP_KEY:
        return None
    # One slot past the largest key keeps the default: larger keys are clipped onto it.
    table = pl.repeat(default, top + 2, dtype=values.dtype, eager=True).scatter(keys, values)
    return pl.lit(table).gather(key.clip(upper_bound=top + 1))
