"""The prediction stage's result in the report's terms: one note and the tables of the report."""

from __future__ import annotations

from typing import Any

from engine.predict.stage import PredictResult

TOP_FEATURES = 12


def predict_note(value: PredictResult | str | None) -> str:
    """One line for the report's notes: what was predicted and how it did, or why not."""
    if value is None:
        return "Prediction: not computed."
    if isinstance(value, str):
        return f"Prediction: not trained ({value})."
    found = value.metrics
    what = (
        f"Prediction: {found['target']} within {found['horizon_days']} days of the cutoff "
        f"{found['cutoff'][:16]} UTC; gradient boosting trained on "
        f"{len(found['training_cutoffs'])} earlier cutoffs ({found['training_rows']:,} rows)."
    )
    evaluation = found["evaluation"]
    if not evaluation:
        return what + " The log ends before the label window does: scores only."
    model = evaluation["model"]
    best = max(evaluation["baselines"].items(), key=lambda item: item[1]["roc_auc"])
    return (
        f"{what} Held out: ROC AUC {model['roc_auc']:.3f} against {best[1]['roc_auc']:.3f} for "
        f"the best baseline ({best[0]}); lift in the top decile {model['lift_top_decile']:.1f}; "
        f"base rate {model['base_rate']:.2%}."
    )


def predict_tables(value: PredictResult | str | None) -> dict[str, Any]:
    """The report's prediction fields (``engine.report.ReportData``): the target, and the
    tables of scores by segment, calibration, lift and the top features."""
    if not isinstance(value, PredictResult):
        return {}
    importance = value.tables.get("importance")
    return {
        "predict_target": value.metrics["target"],
        "predict_by_segment": value.by_segment,
        "predict_calibration": value.tables.get("calibration"),
        "predict_lift": value.tables.get("lift"),
        "predict_importance": None if importance is None else importance.head(TOP_FEATURES),
    }
