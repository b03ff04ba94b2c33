"""The same core features in idiomatic DuckDB SQL and in pandas, for same-run comparisons."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl

# {events}: a relation with user_id, ts, event_type, product_id, price and rn (row order in
# the source, the tie-breaker the feature definitions use); {products}: product_id, category.
DUCKDB_FEATURES = """
WITH e AS (
  SELECT user_id, ts, event_type::VARCHAR AS event_type, product_id, price, rn,
         lag(ts) OVER (PARTITION BY user_id ORDER BY ts, rn) AS prev_ts
  FROM {events}
), s AS (
  SELECT *, sum(CASE WHEN prev_ts IS NULL OR ts - prev_ts > INTERVAL 30 MINUTE THEN 1 ELSE 0 END)
            OVER (PARTITION BY user_id ORDER BY ts, rn) AS session FROM e
), sess AS (
  SELECT user_id, session, bool_or(event_type = 'purchase') AS buy,
         bool_or(event_type = 'add_to_cart') AS cart FROM s GROUP BY ALL
), sess_u AS (
  SELECT user_id, count(*) AS n_sessions, count(*) FILTER (WHERE buy) AS buy_sessions,
         count(*) FILTER (WHERE cart) AS cart_sessions,
         count(*) FILTER (WHERE cart AND NOT buy) AS abandoned FROM sess GROUP BY ALL
), cat AS (
  SELECT user_id, category, count(*) AS v FROM e JOIN {products} USING (product_id)
  WHERE event_type = 'view' GROUP BY ALL
), top AS (
  SELECT user_id, arg_min(category, (-v, category)) AS top_category FROM cat GROUP BY ALL
), base AS (
  SELECT user_id, count(*) AS n_events,
    count(*) FILTER (WHERE event_type = 'view') AS n_views,
    count(*) FILTER (WHERE event_type = 'add_to_cart') AS n_carts,
    count(*) FILTER (WHERE event_type = 'remove_from_cart') AS n_removes,
    count(*) FILTER (WHERE event_type = 'purchase') AS n_purchases,
    count(DISTINCT product_id) FILTER (WHERE event_type = 'view') AS n_products_viewed,
    coalesce(sum(price::DOUBLE) FILTER (WHERE event_type = 'purchase'), 0) AS revenue,
    count(DISTINCT (ts AT TIME ZONE 'UTC')::DATE) AS active_days,
    min(ts) AS first_ts, max(ts) AS last_ts
  FROM e GROUP BY ALL
)
SELECT b.user_id, n_events, n_views, n_carts, n_removes, n_purchases, n_sessions,
  n_products_viewed, revenue,
  CASE WHEN n_purchases > 0 THEN revenue / n_purchases ELSE 0 END AS avg_order_value,
  CASE WHEN n_views > 0 THEN n_carts / n_views ELSE 0 END AS view_to_cart,
  buy_sessions / n_sessions AS purchase_session_rate,
  CASE WHEN cart_sessions > 0 THEN abandoned / cart_sessions ELSE 0 END AS cart_abandon_rate,
  n_events / n_sessions AS events_per_session, active_days,
  epoch_us((SELECT max(ts) FROM e) - last_ts) / 86400e6 AS recency_days,
  epoch_us((SELECT max(ts) FROM e) - first_ts) / 86400e6 AS tenure_days,
  top_category
FROM base b JOIN sess_u USING (user_id) LEFT JOIN top USING (user_id) ORDER BY b.user_id
"""


def duckdb_features(data: Path) -> pl.DataFrame:
    """The DuckDB twin over a dataset folder (each user's events live in one part file)."""
    con = duckdb.connect()
    events = (
        f"(SELECT *, file_row_number AS rn FROM read_parquet('{data / 'events' / '*.parquet'}', "
        "file_row_number = true))"
    )
    sql = DUCKDB_FEATURES.format(
        events=events, products=f"read_parquet('{data / 'products.parquet'}')"
    )
    return con.sql(sql).pl()


def pandas_features(events: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Idiomatic pandas (sort, groupby, diff); events already in memory."""
    e = events.sort_values(["user_id", "ts"], kind="stable")
    gap = e.groupby("user_id")["ts"].diff()
    e = e.assign(new=gap.isna() | (gap > pd.Timedelta(minutes=30)))
    e["session"] = e["new"].cumsum()
    kind = e["event_type"].astype(str)
    for name in ("view", "add_to_cart", "remove_from_cart", "purchase"):
        e[name] = kind == name
    e["revenue"] = np.where(e["purchase"], e["price"].astype("float64"), 0.0)
    e["day"] = e["ts"].dt.floor("D")
    g = e.groupby("user_id")
    out = pd.DataFrame(
        {
            "n_events": g.size(),
            "n_views": g["view"].sum(),
            "n_carts": g["add_to_cart"].sum(),
            "n_removes": g["remove_from_cart"].sum(),
            "n_purchases": g["purchase"].sum(),
            "n_sessions": g["new"].sum(),
            "revenue": g["revenue"].sum(),
            "active_days": g["day"].nunique(),
            "first_ts": g["ts"].min(),
            "last_ts": g["ts"].max(),
        }
    )
    out["n_products_viewed"] = e[e["view"]].groupby("user_id")["product_id"].nunique()
    sess = e.groupby(["user_id", "session"]).agg(
        buy=("purchase", "any"), cart=("add_to_cart", "any")
    )
    su = sess.groupby("user_id").agg(buy=("buy", "sum"), cart=("cart", "sum"))
    su["abandoned"] = (sess["cart"] & ~sess["buy"]).groupby("user_id").sum()
    out = out.join(su)
    views = e[e["view"]].merge(products[["product_id", "category"]], on="product_id")
    counts = views.groupby(["user_id", "category"]).size().rename("v").reset_index()
    counts = counts.sort_values(["user_id", "v", "category"], ascending=[True, False, True])
    out["top_category"] = counts.drop_duplicates("user_id").set_index("user_id")["category"]
    as_of = e["ts"].max()
    out["avg_order_value"] = np.where(
        out["n_purchases"] > 0, out["revenue"] / out["n_purchases"].clip(lower=1), 0.0
    )
    out["view_to_cart"] = np.where(
        out["n_views"] > 0, out["n_carts"] / out["n_views"].clip(lower=1), 0.0
    )
    out["purchase_session_rate"] = out["buy"] / out["n_sessions"]
    out["cart_abandon_rate"] = np.where(
        out["cart"] > 0, out["abandoned"] / out["cart"].clip(lower=1), 0.0
    )
    out["events_per_session"] = out["n_events"] / out["n_sessions"]
    out["recency_days"] = (as_of - out["last_ts"]).dt.total_seconds() / 86400
    out["tenure_days"] = (as_of - out["first_ts"]).dt.total_seconds() / 86400
    return out.fillna({"n_products_viewed": 0})
