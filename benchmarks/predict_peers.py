"""The snapshot features of engine.predict written as DuckDB SQL: the benchmark's peer and the
tests' independent reference (the same definitions, from shared/DESIGN.md and
engine.predict.snapshots, without the products table: no price index or category shares)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

US_PER_DAY = 86_400_000_000


def snapshot_sql(source: str, cutoff: dt.datetime, windows: Sequence[int]) -> str:
    """One SELECT for the snapshot at ``cutoff`` of the events in ``source`` (a table name or
    a ``read_parquet(...)`` call)."""
    c = f"TIMESTAMPTZ '{cutoff.isoformat()}'"
    windowed = []
    for w in windows:
        start = f"{c} - INTERVAL {w} DAY"
        windowed += [
            f"count(*) FILTER (WHERE ts >= {start}) AS events_{w}d",
            f"count(*) FILTER (WHERE ts >= {start} AND event_type = 'purchase') AS purchases_{w}d",
            f"count(DISTINCT back) FILTER (WHERE ts >= {start}) AS active_days_{w}d",
        ]
    columns = ",\n        ".join(windowed)
    return f"""
WITH known AS (
    SELECT user_id, ts, CAST(event_type AS VARCHAR) AS event_type, product_id,
           CAST(price AS DOUBLE) AS price,
           (epoch_us({c}) - epoch_us(ts)) // {US_PER_DAY} AS back,
           CASE WHEN lag(ts) OVER w IS NULL OR ts - lag(ts) OVER w > INTERVAL 30 MINUTE
                THEN 1 ELSE 0 END AS new_session
    FROM {source}
    WHERE ts < {c}
    WINDOW w AS (PARTITION BY user_id ORDER BY ts)
),
numbered AS (
    SELECT *, sum(new_session) OVER (PARTITION BY user_id ORDER BY ts
                                     ROWS UNBOUNDED PRECEDING) AS session
    FROM known
),
sessions AS (
    SELECT user_id,
           count(*) FILTER (WHERE bought) AS n_purchase_sessions,
           count(*) FILTER (WHERE carted) AS cart_sessions,
           count(*) FILTER (WHERE carted AND bought) AS cart_buy_sessions
    FROM (SELECT user_id, session, bool_or(event_type = 'purchase') AS bought,
                 bool_or(event_type = 'add_to_cart') AS carted
          FROM numbered GROUP BY user_id, session)
    GROUP BY user_id
),
users AS (
    SELECT user_id,
        count(*) AS n_events,
        count(*) FILTER (WHERE event_type = 'view') AS n_views,
        count(*) FILTER (WHERE event_type = 'add_to_cart') AS n_carts,
        count(*) FILTER (WHERE event_type = 'remove_from_cart') AS n_removes,
        count(*) FILTER (WHERE event_type = 'purchase') AS n_purchases,
        CAST(sum(new_session) AS BIGINT) AS n_sessions,
        count(DISTINCT product_id) FILTER (WHERE event_type = 'view') AS n_products_viewed,
        coalesce(sum(price) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,
        count(DISTINCT CAST(ts AT TIME ZONE 'UTC' AS DATE)) AS active_days,
        (epoch_us({c}) - epoch_us(max(ts))) / {US_PER_DAY} AS recency_days,
        (epoch_us({c}) - epoch_us(min(ts))) / {US_PER_DAY} AS tenure_days,
        coalesce(avg(price) FILTER (WHERE event_type = 'view'), 0) AS avg_view_price,
        {columns},
        (epoch_us({c}) - epoch_us(max(ts) FILTER (WHERE event_type = 'purchase')))
            / {US_PER_DAY} AS days_since_purchase,
        (epoch_us({c}) - epoch_us(min(ts) FILTER (WHERE event_type = 'purchase')))
            / {US_PER_DAY} AS days_since_first_purchase
    FROM numbered
    GROUP BY user_id
)
SELECT u.*, coalesce(s.n_purchase_sessions, 0) AS n_purchase_sessions,
    coalesce(s.cart_sessions, 0) AS cart_sessions,
    coalesce(s.cart_buy_sessions, 0) AS cart_buy_sessions
FROM users u LEFT JOIN sessions s USING (user_id)
ORDER BY user_id
"""


def _ratio(num: str, den: str) -> pl.Expr:
    return pl.when(pl.col(den) > 0).then(pl.col(num) / pl.col(den)).otherwise(0.0)


def duckdb_snapshot(
    connection: object, source: str, cutoff: dt.datetime, windows: Sequence[int]
) -> pl.DataFrame:
    """Run ``snapshot_sql`` and derive the ratio features from its counts (plain arithmetic,
    written once here as the DESIGN table states it)."""
    raw = connection.sql(snapshot_sql(source, cutoff, windows)).pl()  # type: ignore[attr-defined]
    return raw.with_columns(
        _ratio("revenue", "n_purchases").alias("avg_order_value"),
        _ratio("n_carts", "n_views").alias("view_to_cart"),
        _ratio("n_purchase_sessions", "n_sessions").alias("purchase_session_rate"),
        pl.when(pl.col("cart_sessions") > 0)
        .then(1.0 - pl.col("cart_buy_sessions") / pl.col("cart_sessions"))
        .otherwise(0.0)
        .alias("cart_abandon_rate"),
        _ratio("n_events", "n_sessions").alias("events_per_session"),
        _ratio("n_purchases", "n_carts").alias("cart_to_purchase"),
        _ratio("n_removes", "n_carts").alias("remove_rate"),
    ).drop("cart_sessions", "cart_buy_sessions")
