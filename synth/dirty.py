"""Labelled defects for testing validation and quarantine at scale (``--dirty RATE``).

Each defect kind touches about RATE/5 of the events (missing prices and unknown event types
RATE/10 each); the exact counts go to the manifest so a test can check the engine finds them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.schema import EVENT_TYPES

UNKNOWN_EVENT_TYPE = "wishlist"
EVENT_KINDS = (
    "duplicated_events",
    "out_of_order_rows",
    "negative_prices",
    "missing_prices",
    "unknown_event_types",
)
PRODUCT_KINDS = ("missing_categories", "missing_brands")


def _sample(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    k = int(rng.binomial(n, share)) if n else 0
    return np.sort(rng.choice(n, size=k, replace=False)) if k else np.empty(0, np.int64)


def dirty_events(
    cols: dict[str, np.ndarray], rate: float, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, int]]:
    """Inject defects into one block's columns (event_type code 4 means unknown).

    Returns:
        The changed columns, a boolean array marking prices to write as null, and counts.
    """
    n = cols["ts"].size
    price = cols["price"].copy()
    event_type = cols["event_type"].copy()
    ts = cols["ts"].copy()
    negative = _sample(rng, n, rate / 5)
    price[negative] = -np.abs(price[negative]) - np.float32(1)
    missing = np.zeros(n, dtype=bool)
    missing[_sample(rng, n, rate / 10)] = True
    unknown = _sample(rng, n, rate / 10)
    event_type[unknown] = len(EVENT_TYPES)  # the code after the contract's last type
    # Swap the timestamps of neighbouring events of one user: rows out of (user_id, ts) order.
    swap = _sample(rng, max(n - 1, 0), rate / 5)
    user = cols["user_id"]
    swap = swap[(user[swap] == user[swap + 1]) & (ts[swap] != ts[swap + 1])]
    swap = swap[np.concatenate([[True], np.diff(swap) > 1])] if swap.size else swap
    ts[swap], ts[swap + 1] = ts[swap + 1].copy(), ts[swap].copy()
    duplicate = np.zeros(n, dtype=bool)
    duplicate[_sample(rng, n, rate / 5)] = True
    repeats = 1 + duplicate.astype(np.int64)
    out = {**cols, "ts": ts, "price": price, "event_type": event_type}
    out = {name: np.repeat(values, repeats) for name, values in out.items()}
    missing = np.repeat(missing, repeats)
    # Counts are of rows as written: a duplicated defective row counts twice.
    counts = {
        "duplicated_events": int(duplicate.sum()),
        "out_of_order_rows": int(swap.size),
        "negative_prices": int(((out["price"] < 0) & ~missing).sum()),
        "missing_prices": int(missing.sum()),
        "unknown_event_types": int((out["event_type"] == len(EVENT_TYPES)).sum()),
    }
    return out, missing, counts


def dirty_products(
    table: pa.Table, rate: float, rng: np.random.Generator
) -> tuple[pa.Table, dict[str, int]]:
    """Null out some categories and brands."""
    counts = {}
    for column, kind in (("category", "missing_categories"), ("brand", "missing_brands")):
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[_sample(rng, table.num_rows, rate)] = True
        values = pc.if_else(
            pa.array(mask), pa.nulls(table.num_rows, pa.large_string()), table[column]
        )
        table = table.set_column(table.schema.get_field_index(column), column, values)
        counts[kind] = int(mask.sum())
    return table, counts
