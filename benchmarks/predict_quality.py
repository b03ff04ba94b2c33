"""How good is the prediction, against its baselines and against an oracle that knows the
planted truth (figures for the README; the quality test uses the same oracle).

    python -m benchmarks.predict_quality [--horizons 7 14]

The oracle is our own model given, besides the snapshot features, the generator's hidden
state of each user at the cutoff: persona, purchase rate, dropout chance, mean spend and
whether the user is still active (not lapsed or dropped out) at the cutoff. It is trained
and evaluated exactly like the model (same cutoffs, same labels), so the ratio of AUCs says
how much of what the hidden state tells the observable behaviour recovers; a second oracle
knows the persona only. Datasets (DATASETS): the default generator over 60 days. Writes benchmarks/results/predict.json (key "quality").
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

from engine.features import category_list
from engine.features.buckets import clean_events
from engine.io.dataset import load_dataset
from engine.predict import (
    TARGETS,
    PredictConfig,
    metrics,
    plan_cutoffs,
    predict_stage,
    snapshot_columns,
)
from engine.predict.model import fit_classifier, positive_scores
from engine.predict.stage import build_snapshots, event_bounds
from synth import SynthConfig, generate_dataset

RESULTS = Path(__file__).parent / "results" / "predict.json"
# (users, seed, separation): three seeds at one size, a larger size, and personas whose
# category taste does not lean (separation 0), where behaviour alone must tell them apart.
DATASETS = [
    (50_000, 1, 0.3),
    (50_000, 2, 0.3),
    (50_000, 3, 0.3),
    (200_000, 1, 0.3),
    (50_000, 1, 0.0),
]
TRUTH_COLUMNS = ("persona_code", "purchase_rate", "dropout", "mean_spend", "active")


ORACLES = {"oracle": TRUTH_COLUMNS, "persona": ("persona_code",)}  # name -> what it knows


def _truth(data: Path) -> pl.DataFrame:
    """Every user's planted hidden state, from truth/*.parquet (``active`` comes per cutoff)."""
    process = pl.read_parquet(data / "truth" / "purchase_process.parquet")
    personas = pl.read_parquet(data / "truth" / "personas.parquet")
    return process.join(personas, on="user_id").select(
        "user_id",
        pl.col("persona").cast(pl.Categorical).to_physical().alias("persona_code"),
        "purchase_rate",
        "dropout",
        "mean_spend",
        "inactive_ts",
    )


def oracle_aucs(
    data: Path, config: PredictConfig, oracles: dict[str, tuple[str, ...]] = ORACLES
) -> dict[str, float]:
    """ROC AUC at the cutoff of the model given, besides the snapshot, each oracle's part of
    the planted hidden state (the snapshots are built once for all of them)."""
    dataset = load_dataset(data)
    events = clean_events(dataset, "error", dt.datetime.max.replace(tzinfo=dt.UTC))
    cutoff, training, evaluable = plan_cutoffs(*event_bounds([events]), config)
    assert evaluable, "the oracle needs the window after the cutoff"
    cutoffs = [*training, cutoff]
    products = None if dataset.products is None else dataset.products.collect()
    snaps = build_snapshots([events], cutoffs, [True] * len(cutoffs), config, products)
    features = snapshot_columns(config.all_windows, category_list(products))
    truth = _truth(data)
    inactive = pl.col("inactive_ts")
    known = [
        frame.join(truth, on="user_id", how="left").with_columns(
            (inactive.is_null() | (inactive >= at)).alias("active")
        )
        for frame, at in zip(snaps, cutoffs, strict=True)
    ]
    train, now = pl.concat(known[:-1]), known[-1]
    found = {}
    for name, truth_columns in oracles.items():
        columns = [*features, *truth_columns]
        x_train = train.select(pl.col(columns).cast(pl.Float64)).to_numpy()
        model = fit_classifier(x_train, train["label"].to_numpy(), config.seed)
        x_now = now.select(pl.col(columns).cast(pl.Float64)).to_numpy()
        found[name] = metrics(positive_scores(model, x_now), now["label"].to_numpy())["roc_auc"]
    return found


def quality_row(data: Path, config: PredictConfig, out: Path) -> dict[str, Any]:
    """The model, its baselines and the oracle on one dataset and target."""
    dataset = load_dataset(data)
    events = clean_events(dataset, "error", dt.datetime.max.replace(tzinfo=dt.UTC))
    start = time.perf_counter()
    products = None if dataset.products is None else dataset.products.collect()
    result = predict_stage([events], config, out, products)
    seconds = time.perf_counter() - start
    evaluation = result.metrics["evaluation"]
    model, baselines = evaluation["model"], evaluation["baselines"]
    best = max(baselines, key=lambda name: baselines[name]["roc_auc"])
    oracles = oracle_aucs(data, config)
    oracle, persona_oracle = oracles["oracle"], oracles["persona"]
    return {
        "target": config.target,
        "horizon_days": config.horizon_days,
        "users": evaluation["users"],
        "model": model,
        "baselines": baselines,
        "best_baseline": best,
        "oracle_auc": oracle,
        "persona_oracle_auc": persona_oracle,
        "auc_over_best_baseline": model["roc_auc"] - baselines[best]["roc_auc"],
        "auc_over_oracle": model["roc_auc"] / oracle,
        "brier_over_base": model["brier"] / (model["base_rate"] * (1 - model["base_rate"])),
        "stage_s": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[7, 14])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for users, seed, separation in DATASETS:
            data = Path(scratch) / f"d{users}-{seed}-{separation}"
            synth = SynthConfig(users=users, seed=seed, days=60, separation=separation)
            generate_dataset(synth, data, workers=2)
            for horizon in args.horizons:
                for target in TARGETS:
                    config = PredictConfig(target=target, horizon_days=horizon)
                    row = quality_row(data, config, Path(scratch) / "out")
                    row |= {"generated_users": users, "seed": seed, "separation": separation}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["quality"] = rows
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
