"""Feature definitions: hand-worked examples, a DuckDB twin, plan and engine checks."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine.features.lookup as features_module
from benchmarks.peers import DUCKDB_FEATURES
from engine.features import CORE_FEATURES, compute_features, user_features
from engine.io.dataset import load_dataset
from engine.schema import EVENTS_SCHEMA

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
US = dt.timedelta(microseconds=1)


def frame(rows: list[tuple[int, dt.datetime, str, int, float]]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=EVENTS_SCHEMA, orient="row").lazy()


PRODUCTS = pl.LazyFrame(
    {"product_id": [1, 2, 3], "category": ["b", "a", "c"]},
    schema={"product_id": pl.UInt32, "category": pl.String},
)


@pytest.fixture(scope="module")
def hand() -> dict[int, dict[str, object]]:
    events = frame(
        [
            # user 1: sessions [view p1, view p2, cart p2] | [purchase p2] | [view p1]
            (1, T0, "view", 1, 10.0),
            (1, T0 + 10 * MIN, "view", 2, 20.0),
            (1, T0 + 40 * MIN, "add_to_cart", 2, 20.0),  # exactly 30 min: same session
            (1, T0 + 70 * MIN + US, "purchase", 2, 20.0),  # 30 min + 1 us: new session
            (1, T0 + dt.timedelta(days=1), "view", 1, 10.0),
            # user 2: no views; cart and purchase in one session, a remove in another
            (2, T0, "add_to_cart", 3, 5.0),
            (2, T0 + MIN, "purchase", 3, 5.0),
            (2, T0 + 2 * MIN, "purchase", 3, 7.5),
            (2, T0 + 3 * 60 * MIN, "remove_from_cart", 3, 5.0),
            # user 3: a tie in views between b (p1) and a (p2); top_category = "a"
            (3, T0, "view", 1, 10.0),
            (3, T0 + MIN, "view", 2, 20.0),
        ]
    )
    out = user_features(events, PRODUCTS, categories=["a", "b", "c"]).collect(engine="streaming")
    return {row["user_id"]: row for row in out.iter_rows(named=True)}


def test_user_one_by_hand(hand: dict[int, dict[str, object]]) -> None:
    u = hand[1]
    assert (u["n_events"], u["n_views"], u["n_carts"], u["n_removes"], u["n_purchases"]) == (
        5,
        3,
        1,
        0,
        1,
    )
    assert u["n_sessions"] == 3
    assert u["n_products_viewed"] == 2
    assert u["revenue"] == 20.0 and u["avg_order_value"] == 20.0
    assert u["view_to_cart"] == pytest.approx(1 / 3)
    assert u["purchase_session_rate"] == pytest.approx(1 / 3)
    assert u["cart_abandon_rate"] == 1.0  # the one cart session had no purchase
    assert u["events_per_session"] == pytest.approx(5 / 3)
    assert u["active_days"] == 2
    assert u["recency_days"] == 0.0  # as_of = the largest ts = user 1's last event
    assert u["tenure_days"] == pytest.approx(1.0)
    assert u["top_category"] == "b"
    assert u["share_b"] == pytest.approx(2 / 3) and u["share_a"] == pytest.approx(1 / 3)
    assert u["share_c"] == 0.0


def test_user_without_views(hand: dict[int, dict[str, object]]) -> None:
    u = hand[2]
    assert u["n_views"] == 0 and u["view_to_cart"] == 0.0 and u["top_category"] is None
    assert u["share_a"] == 0.0 and u["n_products_viewed"] == 0
    assert u["n_sessions"] == 2 and u["purchase_session_rate"] == 0.5
    assert u["cart_abandon_rate"] == 0.0  # its cart session had a purchase
    assert u["revenue"] == 12.5 and u["avg_order_value"] == 6.25
    assert u["recency_days"] == pytest.approx(1.0 - 3 / 24)


def test_tie_and_user_without_purchases(hand: dict[int, dict[str, object]]) -> None:
    u = hand[3]
    assert u["top_category"] == "a"  # tie a/b -> lexicographically smallest
    assert u["n_purchases"] == 0 and u["avg_order_value"] == 0.0 and u["revenue"] == 0.0
    assert u["cart_abandon_rate"] == 0.0 and u["n_sessions"] == 1


def test_as_of_and_session_gap() -> None:
    events = frame(
        [
            (1, T0, "view", 1, 1.0),
            (1, T0 + 20 * MIN, "view", 1, 1.0),
            (1, T0 + dt.timedelta(days=3), "view", 2, 1.0),
        ]
    )
    as_of = T0 + dt.timedelta(days=1)
    out = user_features(
        events, PRODUCTS, categories=["a", "b"], as_of=as_of, session_gap=10 * MIN
    ).collect()
    assert out["n_events"][0] == 2  # the event after as_of is ignored
    assert out["n_sessions"][0] == 2  # 20 min > 10 min gap
    assert out["recency_days"][0] == pytest.approx(1 - 20 / 1440)


@pytest.mark.parametrize(
    "options",
    [{}, {"range_users": 7000, "bucket_rows": 0}],
    ids=["one-read", "user-ranges"],  # small sorted input: scan + features fused; or ranges
)
def test_matches_duckdb_on_generated_data(small_dataset: Path, options: dict[str, int]) -> None:
    ds = load_dataset(small_dataset)
    ours = compute_features(ds, **options).features
    events = (
        pl.read_parquet(small_dataset / "events")
        .with_columns(pl.col("event_type").cast(pl.String))
        .with_row_index("rn")
        .to_arrow()
    )
    products = pl.read_parquet(small_dataset / "products.parquet").to_arrow()
    con = duckdb.connect()
    con.register("events", events)
    con.register("products", products)
    theirs = con.sql(DUCKDB_FEATURES.format(events="events", products="products")).pl()
    assert isinstance(theirs, pl.DataFrame)
    assert ours.height == theirs.height == 20_000
    for column in CORE_FEATURES:
        a, b = ours[column], theirs[column]
        if a.dtype == pl.String:
            assert a.to_list() == b.to_list(), column
        else:
            np.testing.assert_allclose(
                a.to_numpy().astype(float),
                b.to_numpy().astype(float),
                rtol=1e-9,
                atol=1e-9,
                err_msg=column,
            )
    # price_index: mean log of a view's price over its category's median base price.
    reference = con.sql(
        """
        WITH ref AS (
            SELECT product_id, ln(median(base_price) OVER (PARTITION BY category)) AS lref
            FROM products
        )
        SELECT e.user_id, avg(ln(e.price) - r.lref) AS price_index
        FROM events e LEFT JOIN ref r USING (product_id)
        WHERE e.event_type = 'view' AND e.price > 0
        GROUP BY e.user_id
        """
    ).pl()
    both = ours.select("user_id", "price_index").join(
        reference, on="user_id", how="left", suffix="_sql"
    )
    np.testing.assert_allclose(
        both["price_index"].to_numpy(),
        both["price_index_sql"].fill_null(0.0).to_numpy(),
        rtol=1e-6,
        atol=1e-6,
    )


def test_filters_and_projection_reach_the_parquet_scan(small_dataset: Path) -> None:
    events = pl.scan_parquet(small_dataset / "events" / "*.parquet")
    products = pl.read_parquet(small_dataset / "products.parquet")  # collected at the edge
    query = user_features(
        events.filter(pl.col("user_id") < 100),
        products,
        categories=["books"],
        as_of=dt.datetime(2026, 10, 20, tzinfo=dt.UTC),
    )
    plan = query.explain(engine="streaming")
    events_scan = plan[plan.index("Parquet SCAN") :].split("ESTIMATED ROWS")[0]
    selection = events_scan.split("SELECTION:")[1]
    assert 'col("user_id") < 100' in selection and 'col("ts") <=' in selection
    # Dense product ids: categories come from a lookup array, not a join with the products.
    assert "gather" in plan and "products.parquet" not in plan
    assert 'ON: [col("product_id")]' not in plan
    # A lazy products table is joined, not read while the plan is built.
    lazy_products = pl.scan_parquet(small_dataset / "products.parquet")
    joined = user_features(events, lazy_products, categories=["books"]).explain()
    assert "products.parquet" in joined and 'col("product_id")' in joined


def test_sparse_product_ids_join_and_project(
    small_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = pl.scan_parquet(small_dataset / "events" / "*.parquet")
    path = small_dataset / "products.parquet"
    cats = ["books", "toys"]
    dense = user_features(events, pl.read_parquet(path), categories=cats).collect()
    # A lazy products table is joined, reading only product_id, category and base_price.
    query = user_features(events, pl.scan_parquet(path), categories=cats)
    plan = query.explain(engine="streaming")
    scans = [part.split("ESTIMATED ROWS")[0] for part in plan.split("products.parquet")[1:]]
    assert scans and all("PROJECT 2/4" in s or "PROJECT 3/4" in s for s in scans)  # no brand
    monkeypatch.setattr(features_module, "MAX_LOOKUP_KEY", 0)  # every id is "sparse"
    sparse = user_features(events, pl.read_parquet(path), categories=cats).collect()
    # A join may hand a user's rows to the group-by in another order than the lookup, so
    # float sums (revenue, mean prices) may differ in the last bits: n * eps relative at
    # most, for the few hundred rows of a user.
    for joined in (query.collect(), sparse):
        assert_frame_equal(joined, dense, check_exact=False, rel_tol=1e-12, abs_tol=0.0)


def test_events_of_products_missing_from_the_products_table() -> None:
    events = frame(
        [
            (1, T0, "view", 2, 1.0),  # category "a"
            (1, T0 + MIN, "view", 7, 1.0),  # beyond the largest known id: no category
            (1, T0 + 2 * MIN, "view", 7, 1.0),
        ]
    )
    out = user_features(events, PRODUCTS, categories=["a", "b", "c"]).collect().row(0, named=True)
    assert (out["n_views"], out["share_a"], out["top_category"]) == (3, pytest.approx(1 / 3), "a")


def _node_names(snippet: str) -> set[str]:
    code = snippet
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={"POLARS_VERBOSE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        line.split("running ")[1].split(" in subgraph")[0]
        for line in proc.stderr.splitlines()
        if "in subgraph" in line
    }


def test_features_run_natively_on_the_streaming_engine(small_dataset: Path) -> None:
    setup = textwrap.dedent(f"""
        import polars as pl
        from engine.features import user_features
        ev = pl.scan_parquet("{small_dataset}/events/*.parquet")
        pr = pl.read_parquet("{small_dataset}/products.parquet")  # as the stage passes it
    """)
    ours = _node_names(
        setup + "user_features(ev, pr, categories=['books']).collect(engine='streaming')"
    )
    assert {"group-by", "cum_sum", "equi-join"} <= ours
    assert not {n for n in ours if "in-memory" in n and n != "in-memory-sink"}
    # The check can fail: a Python UDF forces an in-memory fallback node.
    fallback = _node_names(setup + "ev.map_batches(lambda d: d).collect(engine='streaming')")
    assert "in-memory-map" in fallback


def test_as_of_is_the_same_on_every_path(small_dataset: Path) -> None:
    ds = load_dataset(small_dataset)
    naive = dt.datetime(2026, 10, 20, 12, 0)
    one_read = compute_features(ds, as_of=naive).features
    ranges = compute_features(ds, as_of=naive.replace(tzinfo=dt.UTC), bucket_rows=0).features
    assert one_read is not None and ranges is not None
    # Two plans over the same rows: integers equal, float sums within n * eps (see above).
    assert_frame_equal(one_read, ranges, check_exact=False, rel_tol=1e-12, abs_tol=0.0)
    assert one_read["recency_days"].min() >= 0.0
