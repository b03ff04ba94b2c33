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
    in one bin: bins are cut at score quantiles). Sums run in row order (np.bincount), so
    the same scores give the same table to the last bit."""
    edges = np.unique(np.quantile(score, np.linspace(0, 1, DECILES + 1)))
    bins = np.clip(np.searchsorted(edges, score, side="right") - 1, 0, max(0, edges.size - 2))
    users = np.bincount(bins)
    filled = np.flatnonzero(users)
    predicted = np.bincount(bins, weights=score)[filled] / users[filled]
    observed = np.bincount(bins, weights=label.astype(np.float64))[filled] / users[filled]
    return pl.DataFrame(
        {"bin": filled, "users": users[filled], "predicted": predicted, "observed": observed}
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
    """Score distribution per segment: users, mean and the 10/25/50/75/90th percentiles
    (NumPy over each segment's scores in user order: the same scores, the same table)."""
    joined = scores.join(segments.select("user_id", "segment_name"), on="user_id")
    rows = []
    for (name,), group in joined.group_by("segment_name"):
        values = group.sort("user_id")["score"].to_numpy()
        p10, p25, p50, p75, p90 = np.quantile(values, [0.1, 0.25, 0.5, 0.75, 0.9])
        rows.append(
            {"segment_name": name, "users": values.size, "mean": float(np.mean(values))}
            | {"p10": p10, "p25": p25, "p50": p50, "p75": p75, "p90": p90}
        )
    schema = {"segment_name": pl.String, "users": pl.UInt32}
    schema |= dict.fromkeys(("mean", "p10", "p25", "p50", "p75", "p90"), pl.Float64)
    return pl.DataFrame(rows, schema=schema).sort("mean", "segment_name", descending=[True, False])
