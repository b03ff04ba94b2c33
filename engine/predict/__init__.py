"""Conversion and churn prediction: point-in-time snapshots (pure lazy queries over the
features engine), a calibrated gradient-boosting model and its baselines (scikit-learn), an
evaluation on the period after the training labels, and the stage that writes ``predict/``.
"""

from engine.predict.evaluate import lift_at, metrics
from engine.predict.snapshots import (
    TARGETS,
    Target,
    at_risk,
    snapshot,
    snapshot_columns,
    with_labels,
)
from engine.predict.stage import PredictConfig, PredictResult, plan_cutoffs, predict_stage

__all__ = [
    "TARGETS",
    "PredictConfig",
    "PredictResult",
    "Target",
    "at_risk",
    "lift_at",
    "metrics",
    "plan_cutoffs",
    "predict_stage",
    "snapshot",
    "snapshot_columns",
    "with_labels",
]
