"""The prediction stage: snapshots at the cutoff and at earlier cutoffs, a model trained on
the earlier ones, scores at the cutoff, and (when the log reaches past the label window)
an honest evaluation against the baselines; written atomically under ``out``.

Time, not the model, is what keeps this honest. With cutoff C and horizon H the training
snapshots sit at C - H, C - 2H, ... so that every training label window ends at or before
C: nothing at or after C reaches the model, and the evaluation at C is on a later period
than anything trained on.

Outputs:
    scores.parquet   user_id (and user_key when ingest renamed ids), score in [0, 1]: every
                     user with an event before C (for churn: those active in the H days
                     before C; the others have churned already by the definition)
    metrics.json     target, horizon, cutoffs, population; with labels, roc_auc, pr_auc,
                     brier, base_rate and lift_top_decile of the model and of each baseline,
                     the calibration and lift tables; permutation importance; seconds per
                     step (timings_s)
    scores_by_segment.parquet  (with segments) the score distribution per segment
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.inspection import permutation_importance

from engine.exceptions import ConfigError, DataValidationError
from engine.features import category_list
from engine.features.sessions import DEFAULT_SESSION_GAP
from engine.io.atomic import write_parquet_atomic, write_text_atomic
from engine.predict.evaluate import calibration_table, lift_table, metrics, score_summary
from engine.predict.model import (
    RFM_COLUMNS,
    fit_classifier,
    fit_rfm_logistic,
    positive_scores,
)
from engine.predict.snapshots import (
    DEFAULT_WINDOWS,
    TARGETS,
    Target,
    at_risk,
    snapshot,
    snapshot_columns,
    with_labels,
)

IMPORTANCE_ROWS = 8_000  # permutation importance on a fixed sample of this many users
IMPORTANCE_REPEATS = 3


@dataclass(frozen=True)
class PredictConfig:
    """What to predict (validated once, here).

    Attributes:
        target: "conversion" (a purchase in the window) or "churn" (no event in it).
        horizon_days: H, the label window's length in days.
        cutoff: C (default: the last event minus H).
        training_cutoffs: how many earlier snapshots (C - H, C - 2H, ...) to train on; fewer
            when the log starts later.
        windows: recency windows (days) of the snapshot features; H is always one.
        session_gap: as in the features stage.
        seed: for the model and the permutation importance.
    """

    target: Target = "conversion"
    horizon_days: int = 7
    cutoff: dt.datetime | None = None
    training_cutoffs: int = 3
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError.out_of_range("target", " or ".join(TARGETS), self.target)
        if not (isinstance(self.horizon_days, int) and self.horizon_days >= 1):
            raise ConfigError.out_of_range("horizon_days", "a whole number >= 1", self.horizon_days)
        if not self.training_cutoffs >= 1:
            raise ConfigError.out_of_range("training_cutoffs", ">= 1", self.training_cutoffs)
        if self.cutoff is not None and self.cutoff.tzinfo is None:
            object.__setattr__(self, "cutoff", self.cutoff.replace(tzinfo=dt.UTC))

    @property
    def horizon(self) -> dt.timedelta:
        return dt.timedelta(days=self.horizon_days)

    @property
    def all_windows(self) -> tuple[int, ...]:
        return tuple(sorted({*self.windows, self.horizon_days}))


@dataclass
class PredictResult:
    scores: pl.DataFrame  # scores.parquet
    metrics: dict[str, Any]  # metrics.json
    by_segment: pl.DataFrame | None = None
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)  # calibration, lift, importance


def event_bounds(parts: Sequence[pl.LazyFrame]) -> tuple[dt.datetime, dt.datetime]:
    """The first and the last event's ts over every part (one pass over the ts column)."""
    ts = pl.col("ts")
    bounds = pl.concat([p.select(ts.min().alias("first"), ts.max().alias("last")) for p in parts])
    first, last = bounds.select(pl.col("first").min(), pl.col("last").max()).collect().row(0)
    if first is None:
        raise DataValidationError("no events to predict from")
    return first, last


def plan_cutoffs(
    first: dt.datetime, last: dt.datetime, config: PredictConfig
) -> tuple[dt.datetime, list[dt.datetime], bool]:
    """The scoring cutoff, the training cutoffs (oldest first) and whether the log covers
    the scoring cutoff's label window (so that it can be evaluated)."""
    cutoff = config.cutoff or last - config.horizon
    if cutoff <= first:
        raise DataValidationError(
            f"cutoff {cutoff:%Y-%m-%d %H:%M} is not after the first event "
            f"({first:%Y-%m-%d %H:%M}); hint: a later --cutoff or a shorter --horizon-days"
        )
    earlier = [cutoff - k * config.horizon for k in range(1, config.training_cutoffs + 1)]
    training = sorted(c for c in earlier if c > first)
    if not training:
        raise DataValidationError(
            f"no training cutoff: the log starts {first:%Y-%m-%d %H:%M}, less than "
            f"{config.horizon_days} days before the cutoff {cutoff:%Y-%m-%d %H:%M}; hint: a "
            "shorter --horizon-days or a later --cutoff"
        )
    return cutoff, training, last >= cutoff + config.horizon


def build_snapshots(
    parts: Sequence[pl.LazyFrame],
    cutoffs: Sequence[dt.datetime],
    labelled: Sequence[bool],
    config: PredictConfig,
    products: pl.DataFrame | None = None,
) -> list[pl.DataFrame]:
    """One snapshot per cutoff (with a ``label`` where ``labelled``), computed part by part:
    memory follows one part's users times the cutoffs. Parts hold disjoint users; with
    ``products``, every category gets a share feature."""
    categories = category_list(products)
    per_cutoff: list[list[pl.DataFrame]] = [[] for _ in cutoffs]
    for part in parts:
        plans = []
        for cutoff, with_label in zip(cutoffs, labelled, strict=True):
            snap = snapshot(
                part,
                cutoff,
                products=products,
                categories=categories,
                windows=config.all_windows,
                session_gap=config.session_gap,
            )
            if config.target == "churn":
                snap = snap.filter(at_risk(config.horizon_days))
            if with_label:
                snap = with_labels(snap, part, cutoff, config.horizon, config.target)
            plans.append(snap)
        collected = pl.collect_all(plans, engine="streaming")
        for frames, frame in zip(per_cutoff, collected, strict=True):
            frames.append(frame)
    return [pl.concat(frames).sort("user_id") for frames in per_cutoff]


def _matrix(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    return frame.select(pl.col(columns).cast(pl.Float64)).to_numpy()


def predict_stage(
    parts: Sequence[pl.LazyFrame],
    config: PredictConfig,
    out: Path,
    products: pl.DataFrame | None = None,
    segments: pl.DataFrame | None = None,
    user_keys: pl.LazyFrame | None = None,
) -> PredictResult:
    """Snapshots, training, scores and evaluation; written under ``out``.

    Args:
        parts: validated events in user-disjoint parts (user ranges or buckets), each
            sorted by (user_id, ts); all of them, including those after the cutoff.
        config: what to predict.
        out: the folder for scores.parquet, metrics.json, scores_by_segment.parquet.
        products: product_id, category, base_price (collected at the edge), for the
            category shares and the price index.
        segments: user_id, segment_name (for the score distribution by segment).
        user_keys: user_id -> key, when ingest gave the users new ids.
    """
    clock = _Clock()
    cutoff, training, evaluable = plan_cutoffs(*event_bounds(parts), config)
    labelled = [True] * len(training) + [evaluable]
    snaps = build_snapshots(parts, [*training, cutoff], labelled, config, products)
    columns = snapshot_columns(config.all_windows, category_list(products))
    clock.lap("snapshots")
    train = pl.concat(snaps[:-1])
    current = snaps[-1]
    x_train, y_train = _matrix(train, columns), train["label"].to_numpy()
    model = fit_classifier(x_train, y_train, config.seed)
    clock.lap("training")
    score = positive_scores(model, _matrix(current, columns))
    clock.lap("scoring")
    scores = current.select("user_id").with_columns(score=pl.Series(score))
    if user_keys is not None:
        keys = user_keys.select("user_id", pl.col("key").alias("user_key")).collect()
        scores = scores.join(keys, on="user_id", how="left")
    found: dict[str, Any] = {
        "target": config.target,
        "horizon_days": config.horizon_days,
        "cutoff": cutoff.isoformat(),
        "training_cutoffs": [c.isoformat() for c in training],
        "training_rows": train.height,
        "training_base_rate": float(y_train.mean()),
        "scored_users": current.height,
        "features": columns,
        "evaluation": None,
    }
    tables: dict[str, pl.DataFrame] = {}
    if evaluable:
        label = current["label"].to_numpy()
        if 0 < label.sum() < label.size:
            found["evaluation"] = _evaluate(train, current, score, config)
            tables["calibration"] = calibration_table(score, label)
            tables["lift"] = lift_table(score, label)
            found["calibration"] = tables["calibration"].to_dicts()
            found["lift"] = tables["lift"].to_dicts()
        else:
            found["evaluation_skipped"] = "the window after the cutoff holds one outcome only"
    clock.lap("evaluation")
    importance_on = current if found["evaluation"] else snaps[-2]  # the latest with labels
    tables["importance"] = _importance(model, importance_on, columns, config.seed)
    found["importance"] = tables["importance"].to_dicts()
    found["importance_on"] = "the cutoff's snapshot" if found["evaluation"] else "training rows"
    clock.lap("importance")
    found["timings_s"] = clock.laps  # the only entry that differs between identical runs
    out.mkdir(parents=True, exist_ok=True)
    write_parquet_atomic(scores, out / "scores.parquet")
    by_segment = None
    if segments is not None:
        by_segment = score_summary(scores, segments)
        write_parquet_atomic(by_segment, out / "scores_by_segment.parquet")
    write_text_atomic(json.dumps(found, indent=2) + "\n", out / "metrics.json")
    return PredictResult(scores, found, by_segment, tables)


class _Clock:
    """Seconds per step of the stage, for metrics.json."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def baseline_scores(
    train: pl.DataFrame, current: pl.DataFrame, config: PredictConfig
) -> dict[str, tuple[np.ndarray, bool]]:
    """Each baseline's scores at the cutoff, and whether they are probabilities.

    recency: the more recent the last event, the likelier a purchase (the later a churn).
    previous_window: purchases in the H days before the cutoff (conversion), or events in
    them (churn: most users at risk bought nothing then, so purchases would tie them all).
    rfm_logistic: logistic regression on recency, frequency and monetary value.
    """
    sign = 1.0 if config.target == "conversion" else -1.0
    recency = current["recency_days"].to_numpy()
    kind = "purchases" if config.target == "conversion" else "events"
    previous = current[f"{kind}_{config.horizon_days}d"].to_numpy().astype(np.float64)
    logistic = fit_rfm_logistic(_matrix(train, RFM_COLUMNS), train["label"].to_numpy())
    return {
        "recency": (-sign * recency, False),
        "previous_window": (sign * previous, False),
        "rfm_logistic": (positive_scores(logistic, _matrix(current, RFM_COLUMNS)), True),
    }


def _evaluate(
    train: pl.DataFrame, current: pl.DataFrame, score: np.ndarray, config: PredictConfig
) -> dict[str, Any]:
    label = current["label"].to_numpy()
    baselines = {
        name: metrics(values, label, probabilities)
        for name, (values, probabilities) in baseline_scores(train, current, config).items()
    }
    return {"users": int(label.size), "model": metrics(score, label), "baselines": baselines}


def _importance(
    model: object, frame: pl.DataFrame, columns: Sequence[str], seed: int
) -> pl.DataFrame:
    """Permutation importance (drop in ROC AUC) on a fixed sample of ``frame``'s rows (the
    same rows for the same input and seed)."""
    # ROC AUC does not depend on the share of positives, so rare positives are all kept (up
    # to a quarter of the sample): the drops are then measured on enough of both outcomes.
    positives = frame.filter(pl.col("label"))
    negatives = frame.filter(~pl.col("label"))
    keep = min(positives.height, IMPORTANCE_ROWS // 4)
    frame = pl.concat(
        [
            positives.sample(keep, seed=seed),
            negatives.sample(min(negatives.height, IMPORTANCE_ROWS - keep), seed=seed),
        ]
    )
    label = frame["label"].to_numpy()
    if not 0 < label.sum() < label.size:
        schema = {"feature": pl.String, "importance": pl.Float64, "std": pl.Float64}
        return pl.DataFrame(schema=schema)
    found = permutation_importance(
        model,
        _matrix(frame, columns),
        label,
        scoring="roc_auc",
        n_repeats=IMPORTANCE_REPEATS,
        random_state=seed,
        n_jobs=1,
    )
    means, spreads = found.importances_mean, found.importances_std
    return pl.DataFrame({"feature": list(columns), "importance": means, "std": spreads}).sort(
        "importance", "feature", descending=[True, False]
    )
