"""The classifier and the baselines it must beat (scikit-learn; NumPy in, NumPy out).

The model is scikit-learn's HistGradientBoostingClassifier inside CalibratedClassifierCV
(isotonic, 3 folds): boosting ranks well but its probabilities drift with the base rate of
the training cutoffs; the calibration maps them back onto observed rates. Folds are taken
without shuffling over rows stacked in cutoff order, so each calibration fold leans on a
different period.
"""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from engine.exceptions import ModelFitError

CALIBRATION_FOLDS = 3
RFM_COLUMNS = ("recency_days", "n_purchases", "revenue")  # the logistic baseline's inputs


def _check_labels(y: np.ndarray, what: str) -> None:
    positives = int(y.sum())
    if positives < CALIBRATION_FOLDS or y.size - positives < CALIBRATION_FOLDS:
        raise ModelFitError(
            f"{what}: the training labels hold {positives:,} positives among {y.size:,} rows; "
            "a model needs both outcomes (hint: a longer log, another horizon or cutoff)"
        )


def fit_classifier(x: np.ndarray, y: np.ndarray, seed: int = 0) -> CalibratedClassifierCV:
    """Gradient boosting with isotonic calibration, fitted on stacked snapshots.

    Missing values (NaN, e.g. days since a purchase for a user who never bought) are
    routed by the trees themselves. Deterministic for a given ``seed`` and row order.
    """
    _check_labels(y, "the model")
    boosting = HistGradientBoostingClassifier(
        max_iter=300, learning_rate=0.08, l2_regularization=1.0, random_state=seed
    )
    model = CalibratedClassifierCV(boosting, method="isotonic", cv=CALIBRATION_FOLDS)
    return model.fit(x, y)


def fit_rfm_logistic(rfm: np.ndarray, y: np.ndarray) -> object:
    """The logistic-regression baseline on recency, frequency and monetary value (log1p,
    standardised); ``rfm`` columns in the order of RFM_COLUMNS."""
    _check_labels(y, "the RFM baseline")
    model = make_pipeline(
        FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=1000)
    )
    return model.fit(rfm, y)


def positive_scores(model: object, x: np.ndarray) -> np.ndarray:
    """P(label) of each row, in [0, 1]."""
    return np.asarray(model.predict_proba(x)[:, 1], dtype=np.float64)  # type: ignore[attr-defined]
