"""The generator's planted truths, checked statistically on generated samples.

Each check compares the data with what the documented model implies, using references that
do not share the generator's code: lifetimes' BG/NBD fit, a slow NumPy simulation of the
process, and the textbook ratio estimator for the experiments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synth import SynthConfig, generate_dataset
from synth.config import ExperimentSpec, _default_personas
from synth.process import Latent, expected_purchases

GAP = pl.duration(minutes=30)


def _sessions(root: Path) -> pl.DataFrame:
    """Events with their session number (the binding 30-minute rule)."""
    return (
        pl.read_parquet(root / "events")
        .with_columns(
            new=((pl.col("user_id").diff() != 0) | (pl.col("ts").diff() > GAP)).fill_null(True)
        )
        .with_columns(session=pl.col("new").cum_sum())
    )


@pytest.fixture(scope="module")
def default_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("truths") / "default"
    generate_dataset(SynthConfig(users=30_000, seed=5), out)
    return out


def test_a_personas_users_do_not_share_one_top_category(default_sample: Path) -> None:
    views = pl.read_parquet(default_sample / "events").filter(pl.col("event_type") == "view")
    products = pl.read_parquet(default_sample / "products.parquet")
    personas = pl.read_parquet(default_sample / "truth" / "personas.parquet")
    per_user = (
        views.join(products, on="product_id")
        .group_by("user_id", "category")
        .len()
        .sort("user_id", "len", "category", descending=[False, True, False])
        .group_by("user_id", maintain_order=True)
        .agg(top=pl.col("category").first(), top3=pl.col("len").head(3).sum() / pl.col("len").sum())
        .join(personas, on="user_id")
    )
    spread = per_user.group_by("persona").agg(
        most_common=pl.col("top").value_counts(sort=True).first().struct.field("count") / pl.len(),
        categories=pl.col("top").n_unique(),
    )
    for row in spread.iter_rows(named=True):
        assert row["most_common"] < 0.5, row  # no persona is one category
        assert row["categories"] >= 8, row
    # ...yet a user's views concentrate: most users keep most views in three categories
    active = per_user.join(views.group_by("user_id").len(), on="user_id").filter(
        pl.col("len") >= 10
    )
    assert active["top3"].median() >= 0.75  # type: ignore[operator]


def test_arrivals_spread_over_the_window(default_sample: Path) -> None:
    process = pl.read_parquet(default_sample / "truth" / "purchase_process.parquet")
    first_seen = (
        pl.read_parquet(default_sample / "events").group_by("user_id").agg(first=pl.col("ts").min())
    )
    personas = pl.read_parquet(default_sample / "truth" / "personas.parquet")
    users = process.join(first_seen, on="user_id").join(personas, on="user_id")
    new = users.filter(pl.col("arrived_ts").is_not_null())
    # new_users = 0.5 of the users, except lapsed ones (regulars who stop: always returning)
    assert (new["persona"] != "lapsed").all()
    n = users.filter(pl.col("persona") != "lapsed").height
    assert abs(new.height / n - 0.5) < 3 * np.sqrt(0.25 / n)
    # A new user is first seen on their arrival day.
    assert (new["first"].dt.date() == new["arrived_ts"].dt.date()).all()
    # Arrivals fill each quarter of the window about equally (the weekly cycle aside).
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    quarter = ((new["arrived_ts"] - start).dt.total_days() * 4 // 30).value_counts()
    shares = quarter.sort("arrived_ts")["count"].to_numpy() / new.height
    assert np.abs(shares - 0.25).max() < 0.03
    # Returning users are mostly seen early: the weekly cohorts differ in size.
    old = users.filter(pl.col("arrived_ts").is_null())
    assert ((old["first"] - start).dt.total_days() < 7.5).mean() > 0.5


def test_no_events_after_a_user_became_inactive(default_sample: Path) -> None:
    process = pl.read_parquet(default_sample / "truth" / "purchase_process.parquet")
    last = (
        pl.read_parquet(default_sample / "events")
        .group_by("user_id")
        .agg(last=pl.col("ts").max(), last_type=pl.col("event_type").last().cast(pl.String))
    )
    inactive = process.filter(pl.col("inactive_ts").is_not_null()).join(last, on="user_id")
    assert inactive.height > 1000
    assert (inactive["last"] <= inactive["inactive_ts"]).all()
    # Loyal buyers and bargain hunters never lapse: they become inactive by dropping out,
    # right after a repeat purchase, which is their last event.
    personas = pl.read_parquet(default_sample / "truth" / "personas.parquet")
    dropped = inactive.join(personas, on="user_id").filter(
        pl.col("persona").is_in(["loyal_buyer", "bargain_hunter"])
    )
    assert dropped.height > 100
    assert (dropped["last"] == dropped["inactive_ts"]).all()
    assert (dropped["last_type"] == "purchase").all()
    assert (
        process.filter(pl.col("inactive_ts").is_not_null())["expected_purchases_30d"] == 0
    ).all()


def _loyal_only(**overrides: object) -> SynthConfig:
    personas = {
        name: dataclasses.replace(
            spec, share=0.5 if name in ("loyal_buyer", "casual_browser") else 0.0
        )
        for name, spec in _default_personas().items()
    }
    return SynthConfig(personas=personas, products=2000, **overrides)  # type: ignore[arg-type]


def test_bgnbd_fit_recovers_the_planted_process(tmp_path: Path) -> None:
    """lifetimes' BG/NBD fit on the loyal buyers lands on the planted (r, alpha, a, b).

    Tolerance: three standard errors of the fit (sampling noise at this size) plus 6% of the
    value for what the model does not describe: hourly periods merge purchases of one hour,
    sessions are pushed apart and cut at the window's end.
    """
    pd = pytest.importorskip("pandas")
    lifetimes = pytest.importorskip("lifetimes")
    from lifetimes.utils import summary_data_from_transaction_data

    config = _loyal_only(users=40_000, days=120, seed=1)
    generate_dataset(config, tmp_path / "d")
    personas = pl.read_parquet(tmp_path / "d" / "truth" / "personas.parquet")
    purchases = (
        pl.read_parquet(tmp_path / "d" / "events")
        .filter(pl.col("event_type") == "purchase")
        .join(personas.filter(pl.col("persona") == "loyal_buyer"), on="user_id")
        .select("user_id", date=pl.col("ts").dt.replace_time_zone(None))
        .to_pandas()
    )
    end = pd.Timestamp(config.start + dt.timedelta(days=config.days))
    rfm = summary_data_from_transaction_data(
        purchases, "user_id", "date", observation_period_end=end, freq="h"
    )
    fit = lifetimes.BetaGeoFitter().fit(rfm["frequency"], rfm["recency"] / 24, rfm["T"] / 24)
    r, alpha = config.personas["loyal_buyer"].purchase_rate  # type: ignore[misc]
    a, b = config.personas["loyal_buyer"].dropout
    planted = {"r": r, "alpha": alpha, "a": a, "b": b}
    for name, value in planted.items():
        estimate, se = fit.summary.loc[name, "coef"], fit.summary.loc[name, "se(coef)"]
        assert abs(estimate - value) <= 3 * se + 0.06 * value, (name, estimate, se, value)


def test_expected_purchases_match_a_simulation_of_the_process() -> None:
    """The closed form lambda (1 - exp(-kappa t)) / kappa against a slow NumPy simulation."""
    rng = np.random.default_rng(0)
    cases = [(0.1, 0.2, 0.0), (0.4, 0.05, 0.0), (0.05, 0.3, 1 / 7), (0.2, 0.5, 0.02)]
    n = len(cases)
    latent = Latent(
        rate=np.array([c[0] for c in cases]),
        dropout=np.array([c[1] for c in cases]),
        spend_shape=np.ones(n),
        spend_rate=np.ones(n),
        end_day=np.zeros(n, np.int64),
        session_rate=np.ones(n),
        conversion=np.ones(n),
        first_purchase=np.ones(n),
        lapse_rate=np.array([c[2] for c in cases]),
    )
    closed = expected_purchases(latent, np.ones(n), np.ones(n, bool))
    for i, (rate, p, mu) in enumerate(cases):
        counts = np.empty(20_000)
        for k in range(counts.size):
            lapse = rng.exponential(1 / mu) if mu else np.inf
            t, bought = 0.0, 0
            while True:
                t += rng.exponential(1 / rate)
                if t > min(30.0, lapse):
                    break
                bought += 1
                if rng.random() < p:
                    break
            counts[k] = bought
        se = counts.std() / np.sqrt(counts.size)
        assert abs(counts.mean() - closed[i]) < 4 * se, (cases[i], counts.mean(), closed[i])


def test_collections_are_co_viewed(default_sample: Path) -> None:
    collections = pl.read_parquet(default_sample / "truth" / "collections.parquet")
    sizes = collections["collection_id"].value_counts()["count"]
    assert sizes.min() >= 1 and sizes.max() <= 12
    views = (
        _sessions(default_sample)
        .filter(pl.col("event_type") == "view")
        .join(collections, on="product_id")
        .with_columns(prev=pl.col("collection_id").shift().over("session"))
        .drop_nulls("prev")
    )
    same = (views["collection_id"] == views["prev"]).mean()
    share = views["collection_id"].value_counts(normalize=True)["proportion"]
    chance = float((share**2).sum())
    assert same > 0.2 and same / chance > 50  # type: ignore[operator]


Z_99 = 2.576  # 99% intervals: one test makes four interval checks


def _ratio_ci(per_user: pl.DataFrame, z: float = Z_99) -> tuple[float, float, float]:
    """Ratio of the per-session purchase rates, treatment over control, with its confidence
    interval (delta method with users as clusters)."""
    stats = {}
    for variant in ("control", "treatment"):
        g = per_user.filter(pl.col("variant") == variant)
        y, m = g["buys"].to_numpy().astype(float), g["sessions"].to_numpy().astype(float)
        rate = y.sum() / m.sum()
        var = ((y - rate * m) ** 2).sum() / m.sum() ** 2
        stats[variant] = (rate, var)
    (rc, vc), (rt, vt) = stats["control"], stats["treatment"]
    log_ratio, se = np.log(rt / rc), np.sqrt(vt / rt**2 + vc / rc**2)
    return (
        float(np.exp(log_ratio)),
        float(np.exp(log_ratio - z * se)),
        float(np.exp(log_ratio + z * se)),
    )


def test_planted_experiments_show_their_effect(tmp_path: Path) -> None:
    experiments = (ExperimentSpec("checkout", 0.3), ExperimentSpec("aa", 0.0, 0.5, 10))
    config = SynthConfig(users=150_000, seed=9, products=3000, experiments=experiments)
    manifest = generate_dataset(config, tmp_path / "d")
    effects = {e["name"]: e["true_effect"] for e in manifest["experiments"]}
    assert effects["checkout"]["customer_purchase_session_rate_ratio"] == pytest.approx(1.3)
    assigned = pl.read_parquet(tmp_path / "d" / "truth" / "experiments.parquet")
    session_starts = (
        _sessions(tmp_path / "d")
        .group_by("session")
        .agg(
            pl.col("user_id").first(),
            start=pl.col("ts").min(),
            buy=(pl.col("event_type") == "purchase").any(),
        )
        .with_columns(first_purchase=pl.col("start").filter(pl.col("buy")).min().over("user_id"))
    )
    manifest_text = json.dumps(manifest["experiments"])
    for name, expected in (("checkout", 1.3), ("aa", 1.0)):
        arm = assigned.filter(pl.col("experiment") == name)
        # Random assignment: the split holds within binomial noise (no sample-ratio mismatch).
        n = arm.height
        assert abs((arm["variant"] == "treatment").mean() - 0.5) < 3 * np.sqrt(0.25 / n)  # type: ignore[operator]
        # The planted effect: sessions after both the assignment and the first purchase.
        after = session_starts.join(arm, on="user_id").filter(
            (pl.col("start") >= pl.col("assigned_ts"))
            & (pl.col("start") > pl.col("first_purchase"))
        )
        per_user = after.group_by("user_id", "variant").agg(
            sessions=pl.len(), buys=pl.col("buy").sum()
        )
        ratio, low, high = _ratio_ci(per_user)
        assert low <= expected <= high, (name, ratio, low, high, manifest_text)
        if name == "checkout":
            assert low > 1.0  # the planted effect is found, not only "not excluded"
        else:
            assert not low <= 1.3 <= high  # the A/A test does not show the lift
    # Assignment happens at a session on or after the start day.
    aa = assigned.filter(pl.col("experiment") == "aa")
    assert (aa["assigned_ts"] >= dt.datetime(2026, 10, 11, tzinfo=dt.UTC)).all()


def test_a_year_long_window(tmp_path: Path) -> None:
    config = SynthConfig(users=4000, products=1000, days=365, seed=2)
    manifest = generate_dataset(config, tmp_path / "d")
    events = pl.read_parquet(tmp_path / "d" / "events")
    months = events["ts"].dt.month().n_unique()
    assert months == 12
    per_user_30 = manifest["counts"]["events"] / config.users
    month_one = generate_dataset(SynthConfig(users=4000, products=1000, seed=2), tmp_path / "m")
    # Returning users stay active all year: a year holds several months' events per user.
    assert per_user_30 > 4 * month_one["counts"]["events"] / config.users
