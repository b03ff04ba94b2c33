"""Insight definitions on tiny hand-worked logs; lookups against joins on generated data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import engine.features.lookup as features_module
from engine import insights
from engine.features import user_features
from engine.io.dataset import load_dataset
from engine.schema import EVENTS_SCHEMA

T0 = dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)

EVENTS = pl.DataFrame(
    [
        (1, T0, "view", 1, 10.0),
        (1, T0 + M, "add_to_cart", 1, 10.0),
        (1, T0 + 2 * M, "purchase", 1, 10.0),
        (2, T0, "view", 2, 4.0),
        (2, T0 + dt.timedelta(days=8), "add_to_cart", 2, 4.0),  # outside the 7-day window
        (3, T0, "add_to_cart", 1, 10.0),  # cart before any view: not a funnel step
        (3, T0 + M, "view", 1, 10.0),
        (3, T0 + 2 * M, "purchase", 1, 10.0),
        (4, T0, "view", 3, 1.0),
    ],
    schema=EVENTS_SCHEMA,
    orient="row",
).lazy()
PRODUCTS = pl.LazyFrame(
    {"product_id": [1, 2, 3], "category": ["a", "b", "a"], "brand": ["x", "y", "z"]},
    schema={"product_id": pl.UInt32, "category": pl.String, "brand": pl.String},
)
SEGMENTS = pl.LazyFrame(
    {"user_id": [1, 2, 3, 4], "segment": [0, 0, 1, 1], "segment_name": ["X", "X", "Y", "Y"]},
    schema={"user_id": pl.UInt32, "segment": pl.Int32, "segment_name": pl.String},
)


def test_user_funnel_is_strict_and_windowed() -> None:
    flags = insights.user_funnel(EVENTS).collect().sort("user_id")
    assert flags.rows() == [
        (1, True, True, True),
        (2, True, False, False),
        (3, True, False, False),
        (4, True, False, False),
    ]
    wide = insights.user_funnel(EVENTS, window=dt.timedelta(days=9)).collect().sort("user_id")
    assert wide["add_to_cart"].to_list() == [True, True, False, False]


def test_user_funnel_purchase_must_follow_the_qualifying_cart() -> None:
    events = pl.DataFrame(
        [
            (7, T0, "view", 1, 10.0),
            (7, T0 + M, "purchase", 1, 10.0),  # before the cart: not the purchase step
            (7, T0 + 2 * M, "add_to_cart", 1, 10.0),
            (8, T0, "view", 1, 10.0),
            (8, T0 + M, "add_to_cart", 1, 10.0),
            (8, T0 + dt.timedelta(days=7, minutes=1), "purchase", 1, 10.0),  # at the window
        ],
        schema=EVENTS_SCHEMA,
        orient="row",
    ).lazy()
    flags = insights.user_funnel(events).collect().sort("user_id")
    assert flags.rows() == [(7, True, True, False), (8, True, True, True)]


def test_funnel_table() -> None:
    table = insights.funnel(EVENTS).collect()
    assert table["stage"].to_list() == ["view", "add_to_cart", "purchase"]
    assert table["users"].to_list() == [4, 1, 1]
    assert table["of_previous"].to_list() == [1.0, 0.25, 1.0]
    assert table["of_first"].to_list() == [1.0, 0.25, 0.25]
    per_segment = insights.funnel(EVENTS, SEGMENTS).collect()
    y = per_segment.filter(pl.col("segment_name") == "Y")
    assert y["users"].to_list() == [2, 0, 0] and y["of_previous"].to_list() == [1.0, 0.0, 0.0]


def test_session_funnel() -> None:
    table = insights.session_funnel(EVENTS).collect()
    assert table["sessions"].to_list() == [4, 2, 2]  # user 2's cart session has no view


def test_category_preference_lift() -> None:
    table = insights.category_preference(EVENTS, PRODUCTS, SEGMENTS).collect()
    got = {
        (r["segment_name"], r["category"]): (r["share"], r["lift"])
        for r in table.iter_rows(named=True)
    }
    assert got[("X", "a")] == pytest.approx((0.5, 2 / 3))
    assert got[("X", "b")] == pytest.approx((0.5, 2.0))
    assert got[("Y", "a")] == pytest.approx((1.0, 4 / 3))
    assert ("Y", "b") not in got


@pytest.fixture(params=["lookup", "join"])
def segment_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Dense ids take the lookup arrays; with MAX_LOOKUP_KEY = 0 every id is "sparse" and
    takes the joins. Both must give the same tables."""
    if request.param == "join":
        monkeypatch.setattr(features_module, "MAX_LOOKUP_KEY", 0)
    return str(request.param)


def test_category_preference_unknown_products_and_users_without_a_segment(
    segment_path: str,
) -> None:
    more = pl.DataFrame(
        [
            (4, T0 + M, "view", 99, 1.0),  # a product missing from PRODUCTS: "(none)"
            (5, T0, "view", 2, 4.0),  # a user without a segment: only in the overall shares
        ],
        schema=EVENTS_SCHEMA,
        orient="row",
    ).lazy()
    events = pl.concat([EVENTS, more]).sort("user_id", "ts")
    table = insights.category_preference(events, PRODUCTS, SEGMENTS).collect()
    assert table.schema["segment_name"] == pl.String and table.schema["category"] == pl.String
    got = {
        (r["segment_name"], r["category"]): (r["views"], r["lift"])
        for r in table.iter_rows(named=True)
    }
    # overall: a 3, b 2, (none) 1 of 6 views
    assert got == {
        ("X", "a"): (1, pytest.approx(1.0)),
        ("X", "b"): (1, pytest.approx(1.5)),
        ("Y", "(none)"): (1, pytest.approx(2.0)),
        ("Y", "a"): (2, pytest.approx(4 / 3)),
    }
    funnel = insights.funnel(events, SEGMENTS).collect()
    assert funnel.schema["segment_name"] == pl.String
    assert funnel.filter(pl.col("stage") == "view")["users"].sum() == 4  # user 5 left out


def test_lookups_and_joins_agree_on_generated_data(small_dataset: Path) -> None:
    """The segment and category lookups against the joins they replace, on real data (the
    planted personas stand in for segments)."""
    data = load_dataset(small_dataset)
    personas = pl.read_parquet(small_dataset / "truth" / "personas.parquet")
    segments = personas.select("user_id", pl.col("persona").cast(pl.String).alias("segment_name"))

    def tables() -> list[pl.DataFrame]:
        queries = [
            insights.funnel(data.events, segments.lazy()),
            insights.session_funnel(data.events, segments.lazy()),
            insights.category_preference(data.events, data.products, segments.lazy()),
        ]
        return [q.collect(engine="streaming") for q in queries]

    looked_up = tables()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features_module, "MAX_LOOKUP_KEY", 0)
        joined = tables()
    for a, b in zip(looked_up, joined, strict=True):
        assert a.height > 0
        assert_frame_equal(a, b)


DUCKDB_USER_FUNNEL = """
WITH fv AS (
    SELECT user_id, min(ts) AS first_view FROM events WHERE event_type = 'view' GROUP BY user_id
), fc AS (
    SELECT e.user_id, min(e.ts) AS first_cart
    FROM events e JOIN fv USING (user_id)
    WHERE e.event_type = 'add_to_cart' AND e.ts >= fv.first_view
    GROUP BY e.user_id
    HAVING min(e.ts) - any_value(fv.first_view) <= INTERVAL 7 DAY
), fp AS (
    SELECT e.user_id
    FROM events e JOIN fc USING (user_id)
    WHERE e.event_type = 'purchase' AND e.ts >= fc.first_cart
    GROUP BY e.user_id
    HAVING min(e.ts) - any_value(fc.first_cart) <= INTERVAL 7 DAY
)
SELECT u.user_id,
       fv.user_id IS NOT NULL AS view,
       fc.user_id IS NOT NULL AS add_to_cart,
       fp.user_id IS NOT NULL AS purchase
FROM (SELECT DISTINCT user_id FROM events) u
LEFT JOIN fv USING (user_id) LEFT JOIN fc USING (user_id) LEFT JOIN fp USING (user_id)
ORDER BY u.user_id
"""


def test_user_funnel_matches_duckdb_on_generated_data(small_dataset: Path) -> None:
    ours = insights.user_funnel(load_dataset(small_dataset).events).collect().sort("user_id")
    events = (
        pl.read_parquet(small_dataset / "events")
        .with_columns(pl.col("event_type").cast(pl.String))
        .to_arrow()
    )
    con = duckdb.connect()
    con.register("events", events)
    theirs = con.sql(DUCKDB_USER_FUNNEL).pl()
    assert isinstance(theirs, pl.DataFrame)
    assert ours["purchase"].sum() > 0 and not ours["add_to_cart"].all()
    assert_frame_equal(ours, theirs, check_dtypes=False)


def test_product_interest_and_rank_correlation() -> None:
    interest = insights.product_interest(EVENTS, PRODUCTS)
    table = interest.collect()
    assert table.select("product_id", "views", "carts", "purchases").rows() == [
        (1, 2, 2, 2),
        (2, 1, 1, 0),
        (3, 1, 0, 0),
    ]
    rho = insights.interest_rank_correlation(interest).collect()["spearman"][0]
    assert rho == pytest.approx(1.0)
    worst = insights.viewed_not_bought(interest).collect()["product_id"].to_list()
    assert worst == [2, 3, 1]


def test_revenue_by_segment() -> None:
    features = user_features(EVENTS, PRODUCTS, categories=["a", "b"])
    table = insights.revenue_by_segment(features, SEGMENTS).collect()
    x, y = table.row(0, named=True), table.row(1, named=True)
    assert (x["users"], x["buyers"], x["revenue"], x["conversion"]) == (2, 1, 10.0, 0.5)
    assert y["revenue_share"] == pytest.approx(0.5) and y["avg_order_value"] == 10.0


def test_persona_agreement() -> None:
    segs = SEGMENTS.collect()
    truth = pl.DataFrame({"user_id": [1, 2, 3, 4], "persona": ["p", "p", "q", "q"]}).cast(
        {"user_id": pl.UInt32}
    )
    ari, table = insights.persona_agreement(segs, truth)
    assert ari == pytest.approx(1.0)
    assert table.select("p", "q").rows() == [(2, 0), (0, 2)]
    shuffled = truth.with_columns(pl.Series("persona", ["p", "q", "p", "q"]))
    assert insights.persona_agreement(segs, shuffled)[0] < 0.1
