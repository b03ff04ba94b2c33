"""The CLV stage: rfm up to ``as_of``, BG/NBD and Gamma-Gamma fits, per-customer value, and a
holdout check when the log goes on after ``as_of``; written atomically under ``out``.

Outputs:
    clv.parquet  user_id, frequency, recency, T, monetary_value, p_alive, expected_purchases,
                 expected_spend, clv (periods are days; one row per customer up to as_of)
    fit.json     parameters, log-likelihoods, standard errors, and the holdout evaluation:
                 predicted against actual purchases per frequency bucket, and the MAE
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.clv.bgnbd import BetaGeo
from engine.clv.gamma_gamma import GammaGamma, clv
from engine.clv.likelihood import ModelFitError
from engine.clv.rfm import rfm
from engine.exceptions import ConfigError, DataValidationError
from engine.io.atomic import write_parquet_atomic, write_text_atomic

DAY = dt.timedelta(days=1)
FREQUENCY_BUCKETS = 7  # holdout table rows: 0, 1, ..., 6 and "7+"


@dataclass(frozen=True)
class ClvConfig:
    """What to predict (validated once, here).

    Attributes:
        as_of: end of the calibration window (default: the last event); purchases after it
            are the holdout.
        horizon_days: the value horizon.
        discount_rate: per 30 days, for the discounted value.
        penalizer: lifetimes' L2 penalizer on both models' parameters (0: plain ML).
    """

    as_of: dt.datetime | None = None
    horizon_days: float = 90.0
    discount_rate: float = 0.0
    penalizer: float = 0.0

    def __post_init__(self) -> None:
        if not self.horizon_days > 0:
            raise ConfigError.out_of_range("horizon_days", "> 0", self.horizon_days)
        if not 0 <= self.discount_rate < 1:
            raise ConfigError.out_of_range("discount_rate", "in [0, 1)", self.discount_rate)
        if not self.penalizer >= 0:
            raise ConfigError.out_of_range("penalizer", ">= 0", self.penalizer)


@dataclass
class ClvResult:
    customers: pl.DataFrame  # clv.parquet
    fit: dict[str, Any]  # fit.json


def _holdout(
    events: pl.LazyFrame,
    customers: pl.DataFrame,
    model: BetaGeo,
    as_of: dt.datetime,
    last: dt.datetime,
) -> dict[str, Any] | None:
    """Predicted against actual purchase days after ``as_of``, for the calibration customers."""
    start = as_of.replace(hour=0, minute=0, second=0, microsecond=0)
    end = last.replace(hour=0, minute=0, second=0, microsecond=0)
    days = (end - start) / DAY
    if days < 1:
        return None
    actual = (
        events.filter(
            (pl.col("event_type").cast(pl.String) == "purchase")
            & (pl.col("ts").dt.truncate("1d") > start)
            & (pl.col("ts").dt.truncate("1d") <= end)
        )
        .group_by("user_id")
        .agg(actual=pl.col("ts").dt.truncate("1d").n_unique().cast(pl.Float64))
        .collect(engine="streaming")
    )
    x, t_x, T = (customers[c].to_numpy() for c in ("frequency", "recency", "T"))
    table = customers.select("user_id", "frequency").with_columns(
        predicted=pl.Series(model.expected_purchases(days, x, t_x, T))
    )
    table = table.join(actual, on="user_id", how="left").with_columns(
        pl.col("actual").fill_null(0.0)
    )
    buckets = (
        table.with_columns(
            bucket=pl.col("frequency").clip(upper_bound=FREQUENCY_BUCKETS).cast(pl.Int64)
        )
        .group_by("bucket")
        .agg(
            customers=pl.len(), predicted=pl.col("predicted").mean(), actual=pl.col("actual").mean()
        )
        .sort("bucket")
    )
    return {
        "days": days,
        "customers": table.height,
        "mae": float((table["predicted"] - table["actual"]).abs().mean()),  # type: ignore[arg-type]
        "predicted_total": float(table["predicted"].sum()),
        "actual_total": float(table["actual"].sum()),
        "by_frequency": [
            {
                **row,
                "label": f"{row['bucket']}+"
                if row["bucket"] == FREQUENCY_BUCKETS
                else str(row["bucket"]),
            }
            for row in buckets.iter_rows(named=True)
        ],
    }


def clv_stage(events: pl.LazyFrame, config: ClvConfig, out: Path) -> ClvResult:
    """Fit and write ``out/clv.parquet`` and ``out/fit.json`` from validated events."""
    last = events.select(pl.col("ts").max()).collect(engine="streaming").item()
    if last is None:
        raise DataValidationError("clv: no events. Hint: check the input and its as_of")
    as_of = config.as_of or last
    customers = rfm(events, as_of=as_of).collect(engine="streaming")
    if customers.is_empty():
        raise ModelFitError(
            f"clv: no purchases up to {as_of:%Y-%m-%d}. Hint: choose a later --as-of"
        )
    x, t_x, T, m = (
        customers[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value")
    )
    transactions = BetaGeo(config.penalizer).fit(x, t_x, T)
    spend = GammaGamma(config.penalizer).fit(x, m)
    horizon = config.horizon_days
    customers = customers.with_columns(
        p_alive=pl.Series(transactions.p_alive(x, t_x, T)),
        expected_purchases=pl.Series(transactions.expected_purchases(horizon, x, t_x, T)),
        expected_spend=pl.Series(spend.expected_spend(x, m)),
        clv=pl.Series(
            clv(
                transactions,
                spend,
                x,
                t_x,
                T,
                m,
                horizon=horizon,
                discount_rate=config.discount_rate,
            )
        ),
    )
    fit = {
        "as_of": as_of.isoformat(),
        "period": "D",
        "customers": customers.height,
        "repeat_customers": int((x > 0).sum()),
        "horizon_days": horizon,
        "discount_rate_per_30_days": config.discount_rate,
        "penalizer": config.penalizer,
        "bgnbd": {
            "params": transactions.params_,
            "standard_errors": transactions.standard_errors_,
            "log_likelihood": transactions.log_likelihood_,
        },
        "gamma_gamma": {
            "params": spend.params_,
            "standard_errors": spend.standard_errors_,
            "log_likelihood": spend.log_likelihood_,
        },
        "holdout": _holdout(events, customers, transactions, as_of, last) if last > as_of else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(customers, out / "clv.parquet")
    write_text_atomic(json.dumps(fit, indent=2, default=_json_default) + "\n", out / "fit.json")
    return ClvResult(customers, fit)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
