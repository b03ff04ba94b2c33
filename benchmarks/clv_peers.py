"""Inputs for the CLV benchmarks: BG/NBD customers and purchase logs simulated with NumPy.

Customers follow the BG/NBD with CDNOW's parameters over daily periods (ages of 30 to 365
days), so the rows look like a real daily rfm summary: integer recency and T, many repeats.
"""

from __future__ import annotations

import numpy as np
import polars as pl

CDNOW_DAILY = {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426}  # alpha in days
START_US = 1_767_225_600_000_000  # 2026-01-01 UTC
DAY_US = 86_400_000_000


def simulate_purchases(customers: int, seed: int = 0, params: dict | None = None) -> pl.DataFrame:
    """One row per purchase (user_id, ts, event_type, price), each customer's first purchase
    on a day before 2026-12-31 and repeat purchases from the BG/NBD."""
    p = params or CDNOW_DAILY
    rng = np.random.default_rng(seed)
    rate = rng.gamma(p["r"], 1.0 / p["alpha"], customers)
    dropout = rng.beta(p["a"], p["b"], customers)
    age = rng.integers(30, 366, customers).astype(np.float64)
    times = [np.zeros(customers)]
    alive = np.ones(customers, dtype=bool)
    clock = np.zeros(customers)
    while alive.any():
        idx = np.flatnonzero(alive)
        clock[idx] += rng.exponential(1.0 / rate[idx])
        bought = clock[idx] <= age[idx]
        step = np.full(customers, np.nan)
        step[idx[bought]] = clock[idx[bought]]
        times.append(step)
        alive[idx] = bought & (rng.random(idx.size) >= dropout[idx])
    matrix = np.column_stack(times)
    user, k = np.nonzero(~np.isnan(matrix))
    first = START_US + ((365 - age) * DAY_US).astype(np.int64)
    ts = first[user] + (matrix[user, k] * DAY_US).astype(np.int64)
    return pl.DataFrame(
        {
            "user_id": user.astype(np.uint32),
            "ts": pl.Series(ts).cast(pl.Datetime("us", "UTC")),
            "event_type": pl.Series(["purchase"] * user.size),
            "price": rng.gamma(4.0, 10.0, user.size).round(2),
        }
    )
