"""The CLV stage: rfm up to ``as_of``, BG/NBD and Gamma-Gamma fits, per-customer value, and a
holdout check when the log goes on after ``as_of``; written atomically under ``out``.

Outputs:
    clv.parquet  user_id, frequency, recency, T, monetary_value, p_alive, expected_purchases,
                 expected_spend, clv (periods are days; one row per customer up to as_of)
    clv_by_segment.parquet  (with segments) customers, value and P(alive) per segment
    fit.json     parameters, log-likelihoods, standard errors; the holdout evaluation
                 (predicted against actual purchases per frequency bucket, and the MAE) on the
                 purchases after as_of, or, when there are none, a backtest: the BG/NBD refitted
                 BACKTEST_DAYS (at most a quarter of the log) before as_of and scored on those
                 days; the P(alive) grid over
                 frequency and recency at the longest T
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
from engine.clv.rfm import rfm
from engine.exceptions import ConfigError, DataValidationError, ModelFitError
from engine.io.atomic import write_parquet_atomic, write_text_atomic

DAY = dt.timedelta(days=1)
FREQUENCY_BUCKETS = 7  # holdout table rows: 0, 1, ..., 6 and "7+"
BACKTEST_DAYS = 30
# A Beta or Gamma shape beyond this means the data pin only its mean (a point mass).
UNIDENTIFIED = 1e4
ALIVE_GRID = 16  # P(alive) grid: frequencies 0..15, 16 recencies from 0 to T


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
    by_segment: pl.DataFrame | None = None  # clv_by_segment.parquet


def _warnings(params: dict[str, float]) -> list[str]:
    """What the fit could not tell apart, in words (for fit.json and the report)."""
    notes = []
    a, b, r = params["a"], params["b"], params["r"]
    if a + b > UNIDENTIFIED:
        notes.append(
            f"dropout heterogeneity not identified (a + b = {a + b:.3g}): every customer gets "
            f"the same dropout probability {a / (a + b):.3f}; a longer window or a penalizer helps"
        )
    if r > UNIDENTIFIED:
        notes.append(
            f"purchase-rate heterogeneity not identified (r = {r:.3g}): customers share one rate "
            f"{r / params['alpha']:.4f} per day"
        )
    return notes


def _alive_grid(model: BetaGeo, age: float) -> list[dict[str, float]]:
    """P(alive) of a customer of age ``age`` for each (frequency, recency) on a grid."""
    x, t_x = np.meshgrid(np.arange(ALIVE_GRID, dtype=np.float64), np.linspace(0, age, ALIVE_GRID))
    alive = model.p_alive(x.ravel(), t_x.ravel(), np.full(x.size, age))
    return [
        {"frequency": f, "recency": r, "p_alive": p}
        for f, r, p in zip(x.ravel().tolist(), t_x.ravel().tolist(), alive.tolist(), strict=True)
    ]


def _by_segment(customers: pl.DataFrame, segments: pl.DataFrame) -> pl.DataFrame:
    return (
        customers.join(segments.select("user_id", "segment_name"), on="user_id")
        .group_by("segment_name")
        .agg(
            customers=pl.len(),
            p_alive=pl.col("p_alive").mean(),
            expected_purchases=pl.col("expected_purchases").sum(),
            clv=pl.col("clv").sum(),
            clv_per_customer=pl.col("clv").mean(),
        )
        .sort("clv", descending=True)
    )


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


def clv_stage(
    events: pl.LazyFrame, config: ClvConfig, out: Path, segments: pl.DataFrame | None = None
) -> ClvResult:
    """Fit and write ``out/clv.parquet`` and ``out/fit.json`` (and, given ``segments``
    with user_id and segment_name, ``out/clv_by_segment.parquet``) from validated events."""
    bounds = events.select(pl.col("ts").min(), pl.col("ts").max().alias("last"))
    first, last = bounds.collect(engine="streaming").row(0)
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
    if last.date() > as_of.date():
        holdout = _holdout(events, customers, transactions, as_of, last)
        if holdout:
            holdout["kind"] = "purchases after as_of"
    else:
        holdout = _backtest(events, first, as_of, config)
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
        "holdout": holdout,
        "warnings": _warnings(transactions.params_),
        "p_alive_grid": {"T": float(T.max()), "cells": _alive_grid(transactions, float(T.max()))},
    }
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(customers, out / "clv.parquet")
    by_segment = None
    if segments is not None:
        by_segment = _by_segment(customers, segments)
        write_parquet_atomic(by_segment, out / "clv_by_segment.parquet")
    write_text_atomic(json.dumps(fit, indent=2, default=_json_default) + "\n", out / "fit.json")
    return ClvResult(customers, fit, by_segment)


def _backtest(
    events: pl.LazyFrame, first: dt.datetime, as_of: dt.datetime, config: ClvConfig
) -> dict[str, Any] | None:
    """The BG/NBD refitted BACKTEST_DAYS (at most a quarter of the log from ``first``) before
    ``as_of``, scored on those days (None when the earlier window cannot identify the model)."""
    days = min(BACKTEST_DAYS, max(1, int((as_of - first) / DAY) // 4))
    cut = as_of - dt.timedelta(days=days)
    earlier = rfm(events, as_of=cut).collect(engine="streaming")
    try:
        x, t_x, T = (earlier[c].to_numpy() for c in ("frequency", "recency", "T"))
        model = BetaGeo(config.penalizer).fit(x, t_x, T)
    except ModelFitError:
        return None
    holdout = _holdout(events, earlier, model, cut, as_of)
    if holdout:
        holdout["kind"] = f"backtest: refitted {days} days before as_of"
    return holdout


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clv_note(value: ClvResult | str | None) -> str:
    """One line for the report's notes: the fits, or why CLV was left out."""
    if value is None:
        return "CLV: not computed."
    if isinstance(value, str):
        return f"CLV: not fitted ({value})."
    fit = value.fit
    bg = ", ".join(f"{k} {v:.3g}" for k, v in fit["bgnbd"]["params"].items())
    gg = ", ".join(f"{k} {v:.3g}" for k, v in fit["gamma_gamma"]["params"].items())
    warnings = "".join(f" Note: {w}." for w in fit.get("warnings", []))
    return (
        f"CLV: BG/NBD ({bg}) and Gamma-Gamma ({gg}) on {fit['customers']:,} customers' daily "
        f"purchases up to {fit['as_of'][:10]}; value over {fit['horizon_days']:g} days.{warnings}"
    )


def clv_tables(value: ClvResult | str | None) -> dict[str, Any]:
    """The report's CLV tables (by segment, holdout by frequency, the P(alive) grid)."""
    if not isinstance(value, ClvResult):
        return {"clv_by_segment": None, "clv_holdout": None, "clv_alive": None}
    holdout = value.fit["holdout"]
    return {
        "clv_by_segment": value.by_segment,
        "clv_holdout": None if not holdout else pl.DataFrame(holdout["by_frequency"]),
        "clv_alive": pl.DataFrame(value.fit["p_alive_grid"]["cells"]),
    }
