"""Statistical realism of the generated data (targets: synth/config.py docstring)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synth import SynthConfig, generate_dataset

GAP = pl.duration(minutes=30)


@pytest.fixture(scope="module")
def events(realism_dataset: Path) -> pl.DataFrame:
    truth = pl.read_parquet(realism_dataset / "truth" / "personas.parquet")
    return (
        pl.read_parquet(realism_dataset / "events")
        .with_columns(
            new=((pl.col("user_id").diff() != 0) | (pl.col("ts").diff() > GAP)).fill_null(True)
        )
        .with_columns(session=pl.col("new").cum_sum())
        .join(truth, on="user_id", maintain_order="left")
    )


@pytest.fixture(scope="module")
def sessions(events: pl.DataFrame) -> pl.DataFrame:
    return events.group_by("session").agg(
        n=pl.len(), buy=(pl.col("event_type") == "purchase").any()
    )


@pytest.fixture(scope="module")
def users(events: pl.DataFrame) -> pl.DataFrame:
    purchase = pl.col("event_type") == "purchase"
    return events.group_by("user_id").agg(
        pl.col("persona").first(),
        n=pl.len(),
        purchases=purchase.sum(),
        purchase_sessions=pl.col("session").filter(purchase).n_unique(),
        last=pl.col("ts").max(),
        span_days=(pl.col("ts").max() - pl.col("ts").min()).dt.total_seconds() / 86_400,
        purchase_price=pl.col("price").filter(purchase).mean(),
    )


def test_event_mix(events: pl.DataFrame) -> None:
    share = dict(events["event_type"].cast(pl.String).value_counts(normalize=True).iter_rows())
    assert 0.94 <= share["view"] <= 0.97
    assert 0.02 <= share["add_to_cart"] <= 0.04
    assert 0.01 <= share["purchase"] <= 0.025
    assert 0.2 <= share["remove_from_cart"] / share["add_to_cart"] <= 0.45


def test_sessions(sessions: pl.DataFrame) -> None:
    assert sessions["n"].median() == 2
    assert 4.0 <= sessions["n"].mean() <= 5.0  # type: ignore[operator]
    # GA4's sample converts 1.5-3% of sessions; we buy a little more often (REES46 ~7% buyers)
    assert 0.02 <= sessions["buy"].mean() <= 0.08  # type: ignore[operator]


def test_gaps(events: pl.DataFrame) -> None:
    in_session = events.with_columns(
        gap=pl.col("ts").diff().dt.total_seconds(fractional=True)
    ).filter(~pl.col("new"))["gap"]
    assert 20 <= in_session.median() <= 45  # type: ignore[operator]
    assert in_session.max() <= 30 * 60  # type: ignore[operator]
    between = events.with_columns(gap=pl.col("ts").diff()).filter(
        pl.col("new") & (pl.col("user_id").diff() == 0)
    )["gap"]
    assert (between > dt.timedelta(minutes=30)).all()


def test_diurnal_and_weekly_cycles(events: pl.DataFrame) -> None:
    hourly = events.group_by(pl.col("ts").dt.hour()).len()["len"]
    assert 5 <= hourly.max() / hourly.min() <= 12  # type: ignore[operator]
    per_day = (
        events.group_by(pl.col("ts").dt.date().alias("d"))
        .len()
        .with_columns(wd=pl.col("d").dt.weekday())
    )
    by_weekday = dict(per_day.group_by("wd").agg(pl.col("len").mean()).iter_rows())
    assert 1.1 <= by_weekday[7] / by_weekday[3] <= 1.7  # Sunday peak vs Wednesday


def test_popularity_is_zipf_like(events: pl.DataFrame) -> None:
    counts = np.sort(
        events.filter(pl.col("event_type") == "view")["product_id"]
        .value_counts()["count"]
        .to_numpy()
    )[::-1]
    ranks = np.arange(1, counts.size + 1)
    window = slice(10, 1000)
    slope = np.polyfit(np.log(ranks[window]), np.log(counts[window]), 1)[0]
    assert -1.5 <= slope <= -0.5


def test_prices_lognormal_by_category(realism_dataset: Path) -> None:
    products = pl.read_parquet(realism_dataset / "products.parquet")
    stats = products.group_by("category").agg(
        median=pl.col("base_price").median(), sigma=pl.col("base_price").log().std()
    )
    stats_map = {row[0]: row[1:] for row in stats.iter_rows()}
    assert stats_map["computers"][0] > 10 * stats_map["books"][0]
    assert all(0.45 <= sigma <= 0.75 for _, sigma in stats_map.values())


def test_buyers_repeat_buyers_and_heavy_tail(users: pl.DataFrame) -> None:
    buyers = users.filter(pl.col("purchases") > 0)
    assert 0.01 <= buyers.height / users.height <= 0.12
    assert 0.2 <= (buyers["purchase_sessions"] >= 2).mean() <= 0.6  # type: ignore[operator]
    n = np.sort(users["n"].to_numpy())[::-1]
    assert n[: n.size // 10].sum() / n.sum() >= 0.4


def test_personas_behave_as_planted(users: pl.DataFrame, realism_dataset: Path) -> None:
    by = {
        row["persona"]: row
        for row in users.group_by("persona")
        .agg(
            events=pl.col("n").mean(),
            purchases=pl.col("purchases").sum(),
            purchase_sessions=pl.col("purchase_sessions").mean(),
            max_purchase_sessions=pl.col("purchase_sessions").max(),
            span_days=pl.col("span_days").median(),
            price=pl.col("purchase_price").mean(),
        )
        .iter_rows(named=True)
    }
    window, casual = by["window_shopper"], by["casual_browser"]
    assert window["purchases"] == 0 and casual["purchases"] == 0
    assert window["events"] >= 3 * casual["events"]
    # loyal buyers buy most often (about twice in 30 days, first purchases spread over it)
    loyal = by["loyal_buyer"]["purchase_sessions"]
    assert loyal >= 1.5
    assert all(
        loyal > row["purchase_sessions"] for name, row in by.items() if name != "loyal_buyer"
    )
    assert by["one_time_buyer"]["max_purchase_sessions"] == 1
    # lapsed users stop after Exponential(7 days); the others keep visiting
    assert by["lapsed"]["span_days"] < 7 < by["window_shopper"]["span_days"]
    all_buyers = users.filter(pl.col("purchases") > 0)["purchase_price"].mean()
    assert by["bargain_hunter"]["price"] < 0.5 * all_buyers  # type: ignore[operator]


def _leaning_share(root: Path) -> float:
    """Share of casual browsers' views in their persona's leaning categories."""
    events = pl.read_parquet(root / "events").filter(pl.col("event_type") == "view")
    products = pl.read_parquet(root / "products.parquet")
    truth = pl.read_parquet(root / "truth" / "personas.parquet")
    joined = events.join(products, on="product_id").join(truth, on="user_id")
    casual = joined.filter(pl.col("persona") == "casual_browser")
    return float(casual["category"].is_in(["electronics", "apparel", "beauty"]).mean())


def test_separation_knob(tmp_path: Path) -> None:
    """The leaning categories hold their market share (0.35) at separation 0, all views at
    separation 1, and (1 - s) x 0.35 + s in between, in expectation over users."""
    shares = {}
    for separation in (0.0, 0.5, 1.0):
        out = tmp_path / f"s{separation}"
        config = SynthConfig(users=6000, products=1000, separation=separation, seed=3)
        generate_dataset(config, out)
        shares[separation] = _leaning_share(out)
    assert abs(shares[0.0] - 0.35) < 0.05
    assert abs(shares[0.5] - 0.675) < 0.05
    assert shares[1.0] == 1.0
