"""Scores against labels: the metrics of metrics.json and the report's calibration and lift
tables. Every figure depends only on the (score, label) pairs, not on their order: ties are
shared out fairly wherever a ranking cuts through them."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

DECILES = 10


def lift_at(score: np.ndarray, label: np.ndarray, share: float) -> float:
    """Positive rate among the top ``share`` of rows by score, over the base rate.

    Rows tied with the cut-off score count in proportion (as random tie-breaking would, on
    average), so a baseline with many equal scores is not flattered or punished by row order.
    """
    n = score.size
    take = max(1, int(np.ceil(share * n)))
    threshold = np.sort(score)[n - take]
    above = score > threshold
    tied = score == threshold
    room = take - int(above.sum())
    positives = label[above].sum() + room * label[tied].mean()
    return float(positives / take / label.mean())


def metrics(score: np.ndarray, label: np.ndarray, probabilities: bool = True) -> dict[str, float]:
    """roc_auc, pr_auc (average precision), brier (for probabilities only), base_rate and
    lift_top_decile of one scorer."""
    label = label.astype(np.float64)
    out = {
        "roc_auc": float(roc_auc_score(label, score)),
        "pr_auc": float(average_precision_score(label, score)),
        "brier": float(brier_score_loss(label, score)) if probabilities else None,
        "base_rate": float(label.mean()),
        "lift_top_decile": lift_at(score, label, 1 / DECILES),
    }
    return out  # type: ignore[return-value]


def calibration_table(score: np.ndarray, label: np.ndarray) -> pl.DataFrame:
    """Mean predicted against observed rate in ten bins of equal size by score (ties kept
    in one bin: bins are cut at score quantiles)."""
    edges = np.unique(np.quantile(score, np.linspace(0, 1, DECILES + 1)))
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, max(0, edges.size - 2))
    frame = pl.DataFrame({"bin": bins, "score": score, "label": label.astype(np.float64)})
    return (
        frame.group_by("bin")
        .agg(users=pl.len(), predicted=pl.col("score").mean(), observed=pl.col("label").mean())
        .sort("bin")
    )


def lift_table(score: np.ndarray, label: np.ndarray) -> pl.DataFrame:
    """Lift and cumulative share of positives captured at each top 10%, 20%, ... by score."""
    rows = []
    total = label.sum()
    for d in range(1, DECILES + 1):
        lift = lift_at(score, label.astype(np.float64), d / DECILES)
        rows.append(
            {
                "top_share": d / DECILES,
                "lift": lift,
                "captured": float(lift * d / DECILES) if total else 0.0,
            }
        )
    return pl.DataFrame(rows)


def score_summary(scores: pl.DataFrame, segments: pl.DataFrame) -> pl.DataFrame:
    """Score distribution per segment: users, mean and the 10/25/50/75/90th percentiles."""
    q = pl.col("score")
    return (
        scores.join(segments.select("user_id", "segment_name"), on="user_id")
        .group_by("segment_name")
        .agg(
            users=pl.len(),
            mean=q.mean(),
            p10=q.quantile(0.1),
            p25=q.quantile(0.25),
            p50=q.quantile(0.5),
            p75=q.quantile(0.75),
            p90=q.quantile(0.9),
        )
        .sort("mean", descending=True)
    )
