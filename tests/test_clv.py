"""engine.clv against the published CDNOW results, lifetimes (an independent implementation)
and the generator's planted purchase process."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine.clv import BetaGeo, GammaGamma, ModelFitError, clv, rfm
from synth import SynthConfig, generate_dataset
from tests.test_synth_truths import _loyal_only

pd = pytest.importorskip("pandas")
lifetimes = pytest.importorskip("lifetimes")
from lifetimes.datasets import (  # noqa: E402
    load_cdnow_summary,
    load_cdnow_summary_data_with_monetary_value,
    load_dataset,
)
from lifetimes.utils import summary_data_from_transaction_data  # noqa: E402

CDNOW_END = dt.datetime(1997, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cdnow_transactions() -> pd.DataFrame:
    raw = load_dataset("CDNOW_sample.txt", header=None, sep=r"\s+")
    raw.columns = ["id", "customer", "date", "n", "amount"]
    raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    return raw


def _events(transactions: pd.DataFrame) -> pl.LazyFrame:
    return (
        pl.from_pandas(transactions)
        .lazy()
        .select(
            user_id=pl.col("customer").cast(pl.UInt32),
            ts=pl.col("date").dt.replace_time_zone("UTC"),
            event_type=pl.lit("purchase"),
            price=pl.col("amount"),
        )
    )


@pytest.mark.parametrize("period", ["D", "W"])
def test_rfm_equals_lifetimes_summary_on_cdnow(
    cdnow_transactions: pd.DataFrame, period: str
) -> None:
    as_of = dt.datetime(1997, 6, 30, tzinfo=dt.UTC)  # mid-log: later purchases are ignored
    ours = rfm(_events(cdnow_transactions), as_of=as_of, period=period).collect()  # type: ignore[arg-type]
    reference = summary_data_from_transaction_data(
        cdnow_transactions, "customer", "date", monetary_value_col="amount",
        observation_period_end=pd.Timestamp("1997-06-30"), freq=period,
    ).reset_index()  # fmt: skip
    assert ours.height == len(reference)
    expected = pl.from_pandas(reference).rename({"customer": "user_id"}).sort("user_id")
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(ours[column].to_numpy(), expected[column].to_numpy(), rtol=1e-12)


def test_rfm_ignores_row_order_and_takes_the_enum(cdnow_transactions: pd.DataFrame) -> None:
    events = _events(cdnow_transactions).collect()
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=3).with_columns(
        pl.col("event_type").cast(pl.Enum(["view", "add_to_cart", "remove_from_cart", "purchase"]))
    )
    a = rfm(events.lazy(), as_of=CDNOW_END).collect()
    b = rfm(shuffled.lazy(), as_of=CDNOW_END).collect()
    assert a.equals(b)


def test_bgnbd_reproduces_the_published_cdnow_fit() -> None:
    """Fader, Hardie & Lee (2005): r = 0.243, alpha = 4.414, a = 0.793, b = 2.426,
    LL = -9582.43, E[X(39) | x = 2, t_x = 30.43, T = 38.86] = 1.226."""
    summary = load_cdnow_summary(index_col=[0])
    x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    model = BetaGeo().fit(x, t_x, T)
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert {k: round(v, 3) for k, v in model.params_.items()} == published
    assert round(model.log_likelihood_, 2) == -9582.43
    assert round(float(model.expected_purchases(39, 2, 30.43, 38.86)), 3) == 1.226
    # lifetimes, fitted the same way, agrees on everything the model predicts
    reference = lifetimes.BetaGeoFitter().fit(
        summary["frequency"], summary["recency"], summary["T"]
    )
    for name, se in reference.summary["se(coef)"].items():
        assert model.standard_errors_[name] == pytest.approx(se, rel=0.02)
    np.testing.assert_allclose(
        model.p_alive(x, t_x, T), reference.conditional_probability_alive(x, t_x, T), rtol=1e-3
    )
    np.testing.assert_allclose(
        model.expected_purchases(10, x, t_x, T),
        reference.conditional_expected_number_of_purchases_up_to_time(10, x, t_x, T),
        rtol=1e-3,
    )
    assert model.expected_purchases_new(39) == pytest.approx(
        reference.expected_number_of_purchases_up_to_time(39), rel=1e-3
    )


def test_weights_equal_repeated_rows() -> None:
    summary = load_cdnow_summary(index_col=[0]).head(600)
    x, t_x, T = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    weights = np.arange(600) % 3 + 1
    weighted = BetaGeo().fit(x, t_x, T, weights=weights)
    repeated = BetaGeo().fit(*(np.repeat(v, weights) for v in (x, t_x, T)))
    for name, value in repeated.params_.items():
        assert weighted.params_[name] == pytest.approx(value, rel=1e-5)
    assert weighted.log_likelihood_ == pytest.approx(repeated.log_likelihood_, rel=1e-9)


def test_gamma_gamma_reproduces_the_published_cdnow_fit() -> None:
    """Fader, Hardie & Lee (2005b) on the 946 repeat buyers: p = 6.25, q = 3.74, v = 15.44
    (lifetimes and we find v = 15.448 at the maximum; the paper's rounding differs by 0.008)."""
    data = load_cdnow_summary_data_with_monetary_value()
    x, m = data["frequency"].to_numpy(), data["monetary_value"].to_numpy()
    model = GammaGamma().fit(x, m)
    assert round(model.params_["p"], 2) == 6.25 and round(model.params_["q"], 2) == 3.74
    assert model.params_["v"] == pytest.approx(15.44, abs=0.01)
    repeat = data[data["frequency"] > 0]
    reference = lifetimes.GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    np.testing.assert_allclose(
        model.expected_spend(x, m),
        reference.conditional_expected_average_profit(data["frequency"], data["monetary_value"]),
        rtol=1e-5,
    )
    # the discounted value equals lifetimes' customer_lifetime_value (12 months, 1% a month)
    summary = load_cdnow_summary_data_with_monetary_value()
    transactions = BetaGeo().fit(*(summary[c].to_numpy() for c in ("frequency", "recency", "T")))
    bg = lifetimes.BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    ours = clv(
        transactions,
        model,
        *(summary[c].to_numpy() for c in ("frequency", "recency", "T")),
        m,
        horizon=12 * 30 / 7,
        step=30 / 7,
        discount_rate=0.01,
    )  # fmt: skip  (CDNOW's periods are weeks: 30 days = 30/7 periods)
    theirs = reference.customer_lifetime_value(
        bg, summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    np.testing.assert_allclose(ours, theirs, rtol=2e-2)  # lifetimes' month is 4.345 weeks


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        ([0, 0, 0], [0, 0, 0], [10, 20, 30], "no customer bought twice"),
        ([], [], [], "no customers"),
        ([1, 2], [5, 40], [10, 30], "inconsistent"),
    ],
)
def test_unidentifiable_data_gets_a_clear_error(
    frequency: list[float],
    recency: list[float],
    T: list[float],
    message: str,  # noqa: N803
) -> None:
    with pytest.raises(ModelFitError, match=message):
        BetaGeo().fit(np.array(frequency), np.array(recency), np.array(T))


def test_recovers_the_generators_planted_process(tmp_path: Path) -> None:
    """On the loyal buyers of a 120-day synthetic log, our rfm (hourly) and BG/NBD land on the
    planted (r, alpha, a, b) within three standard errors plus 6% (see the generator's test),
    and the holdout's purchases come within 10% of the prediction."""
    config = _loyal_only(users=40_000, days=150, seed=1)
    generate_dataset(config, tmp_path / "d")
    truth = pl.scan_parquet(tmp_path / "d" / "truth" / "personas.parquet")
    events = pl.scan_parquet(tmp_path / "d" / "events" / "*.parquet").join(
        truth.filter(pl.col("persona") == "loyal_buyer"), on="user_id"
    )
    as_of = dt.datetime(2027, 1, 29, tzinfo=dt.UTC)  # 120 days, then a 30-day holdout
    hourly = rfm(events, as_of=as_of, period="h").collect()
    model = BetaGeo().fit(
        *(hourly[c].to_numpy() / d for c, d in (("frequency", 1), ("recency", 24), ("T", 24)))
    )
    spec = config.personas["loyal_buyer"]
    planted = dict(zip(("r", "alpha", "a", "b"), (*spec.purchase_rate, *spec.dropout), strict=True))  # type: ignore[misc]
    for name, value in planted.items():
        error = abs(model.params_[name] - value)
        assert error <= 3 * model.standard_errors_[name] + 0.06 * value, (name, model.params_)
    daily = rfm(events, as_of=as_of).collect()
    fitted = BetaGeo().fit(*(daily[c].to_numpy() for c in ("frequency", "recency", "T")))
    predicted = fitted.expected_purchases(
        30, *(daily[c].to_numpy() for c in ("frequency", "recency", "T"))
    )
    actual = (
        events.filter(
            (pl.col("event_type") == "purchase") & (pl.col("ts") >= as_of + dt.timedelta(days=1))
        )
        .select(pl.col("ts").dt.truncate("1d"), "user_id")
        .unique()
        .join(daily.lazy().select("user_id"), on="user_id")
        .collect()
        .height
    )
    assert abs(predicted.sum() - actual) < 0.1 * actual, (predicted.sum(), actual)


def test_clv_command_writes_values_and_a_holdout(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_dataset(SynthConfig(users=20_000, products=2000, days=60, seed=4), data)
    out = tmp_path / "clv"
    command = [
        sys.executable,
        "-m",
        "engine.cli",
        "clv",
        str(data),
        "--as-of",
        "2026-11-15",
        "--out",
        str(out),
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    values = pl.read_parquet(out / "clv.parquet")
    assert values.columns == [
        "user_id", "frequency", "recency", "T", "monetary_value",
        "p_alive", "expected_purchases", "expected_spend", "clv",
    ]  # fmt: skip
    assert values["p_alive"].is_between(0, 1).all() and (values["clv"] >= 0).all()
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["bgnbd"]["params"]) == {"r", "alpha", "a", "b"}
    assert isinstance(fit["warnings"], list)
    holdout = fit["holdout"]
    assert holdout["days"] == 15 and holdout["customers"] == values.height
    assert abs(holdout["predicted_total"] / holdout["actual_total"] - 1) < 0.25
    # a window without repeat buyers: one line, no traceback
    proc = subprocess.run(
        [*command[:5], "--as-of", "2026-10-01T12:00", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "no customer bought twice" in proc.stderr


def test_an_unidentified_heterogeneity_is_reported() -> None:
    """A 30-day log pins the mean dropout but not its spread: a and b run off together. The
    fit says so instead of presenting a point mass as a Beta."""
    from engine.clv.stage import _warnings

    notes = _warnings({"r": 0.25, "alpha": 8.7, "a": 5.7e5, "b": 5.3e6})
    assert len(notes) == 1 and "dropout heterogeneity not identified" in notes[0]
    assert "0.097" in notes[0]  # a / (a + b): the one dropout probability left
    assert _warnings({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}) == []
