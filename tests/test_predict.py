"""Prediction: point-in-time snapshots without leakage, a model that beats its baselines on
the planted purchase process, and metrics anyone can recompute from scores.parquet."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy.stats import rankdata

import engine.predict.stage as stage
from benchmarks.foreign_logs import write_rees46
from benchmarks.predict_peers import duckdb_snapshot
from benchmarks.predict_quality import TRUTH_COLUMNS, oracle_aucs
from engine.commands import predict_from_data
from engine.features.buckets import clean_events
from engine.io.dataset import load_dataset
from engine.predict import (
    PredictConfig,
    lift_at,
    predict_stage,
    snapshot,
    snapshot_columns,
    with_labels,
)
from synth import SynthConfig, generate_dataset

CUTOFF = dt.datetime(2026, 11, 20, 5, 30, tzinfo=dt.UTC)
WINDOWS = (7, 14, 28)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 days of the default generator: enough cutoffs, buyers and churners to train on."""
    out = tmp_path_factory.mktemp("predict") / "data"
    generate_dataset(SynthConfig(users=30_000, products=3_000, days=60, seed=11), out, workers=2)
    return out


def _events(data: Path) -> pl.LazyFrame:
    return clean_events(load_dataset(data), "error", dt.datetime.max.replace(tzinfo=dt.UTC))


def _predict(data: Path, out: Path, **config: object) -> pl.DataFrame:
    dataset = load_dataset(data)
    assert dataset.products is not None
    predict_stage(
        [_events(data)],
        PredictConfig(**config),
        out,
        dataset.products.collect(),  # type: ignore[arg-type]
    )
    return pl.read_parquet(out / "scores.parquet")


@pytest.fixture(scope="module")
def predicted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The stage's outputs for each target (H = 7 days, the default cutoff), by target."""
    root = tmp_path_factory.mktemp("predicted")
    for target in ("conversion", "churn"):
        _predict(data, root / target, target=target, horizon_days=7)
    return {target: root / target for target in ("conversion", "churn")}


def test_snapshot_equals_duckdb_sql(data: Path) -> None:
    """Every snapshot feature, against the same definitions written as DuckDB SQL."""
    ours = snapshot(_events(data), CUTOFF, windows=WINDOWS).collect()
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    source = f"read_parquet('{data / 'events'}/*.parquet')"
    reference = duckdb_snapshot(connection, source, CUTOFF, WINDOWS)
    columns = snapshot_columns(WINDOWS)
    assert ours.columns == ["user_id", *columns]
    assert_frame_equal(
        ours.select(pl.all().cast(pl.Float64)),
        reference.select("user_id", *columns).cast(pl.Float64),
        rel_tol=1e-9,  # revenue and mean prices: float sums in another order
        abs_tol=1e-9,
    )


def test_events_at_or_after_the_cutoff_change_nothing_known(data: Path, tmp_path: Path) -> None:
    """Deleting every event at or after C, or rewriting them all, leaves the snapshot and the
    scores bit-identical."""
    events = _events(data).collect().lazy()  # read once: the three inputs below reuse it
    before = events.filter(pl.col("ts") < CUTOFF).collect().lazy()
    kinds = ["purchase", "view", "add_to_cart", "remove_from_cart"]
    rewritten = (
        pl.concat(
            [
                before,
                events.filter(pl.col("ts") >= CUTOFF).with_columns(
                    pl.col("ts") + dt.timedelta(hours=5),
                    pl.col("price") * 3,
                    pl.lit(kinds[0])
                    .cast(events.collect_schema()["event_type"])
                    .alias("event_type"),
                ),
            ]
        )
        .sort("user_id", "ts", maintain_order=True)
        .collect()
        .lazy()
    )
    snapshots = [snapshot(e, CUTOFF).collect() for e in (events, before, rewritten)]
    assert_frame_equal(snapshots[0], snapshots[1])
    assert_frame_equal(snapshots[0], snapshots[2])

    dataset = load_dataset(data)
    assert dataset.products is not None
    products = dataset.products.collect()
    config = PredictConfig(cutoff=CUTOFF)
    scores = [
        predict_stage([e], config, tmp_path / str(i), products).scores
        for i, e in enumerate((events, before, rewritten))
    ]
    assert_frame_equal(scores[0], scores[1])
    assert_frame_equal(scores[0], scores[2])


def test_an_event_at_the_cutoff_is_a_label_not_a_feature() -> None:
    ts = [CUTOFF - dt.timedelta(days=3), CUTOFF - dt.timedelta(hours=1), CUTOFF]
    events = pl.LazyFrame(
        {
            "user_id": pl.Series([1, 1, 1], dtype=pl.UInt32),
            "ts": pl.Series(ts, dtype=pl.Datetime("us", "UTC")),
            "event_type": pl.Series(["view", "view", "purchase"]).cast(
                pl.Enum(["view", "add_to_cart", "remove_from_cart", "purchase"])
            ),
            "product_id": pl.Series([5, 6, 6], dtype=pl.UInt32),
            "price": pl.Series([10.0, 20.0, 20.0], dtype=pl.Float32),
        }
    )
    known = snapshot(events, CUTOFF).collect()
    assert known["n_events"].to_list() == [2] and known["n_purchases"].to_list() == [0]
    assert known["recency_days"][0] == pytest.approx(1 / 24)
    assert known["days_since_purchase"].is_null().all()
    week = dt.timedelta(days=7)
    converted = with_labels(known.lazy(), events, CUTOFF, week, "conversion").collect()
    churned = with_labels(known.lazy(), events, CUTOFF, week, "churn").collect()
    assert converted["label"].to_list() == [True] and churned["label"].to_list() == [False]
    later = with_labels(known.lazy(), events, CUTOFF + dt.timedelta(microseconds=1), week, "churn")
    assert later.collect()["label"].to_list() == [True]  # [C + 1us, ...) misses the event at C


def test_shuffled_labels_teach_nothing(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole stage with every snapshot's labels shuffled among its users: whatever the
    model learns, the held-out ROC AUC is 0.50 +- 0.02 unless the evaluation sees what
    training saw (churn: over 4k users of each outcome at the cutoff, so the AUC's sampling
    SD is about 0.006)."""
    real = stage.with_labels

    def shuffled(*args: object) -> pl.LazyFrame:
        return real(*args).with_columns(pl.col("label").shuffle(seed=1))  # type: ignore[arg-type]

    monkeypatch.setattr(stage, "with_labels", shuffled)
    _predict(data, tmp_path, target="churn", cutoff=CUTOFF)
    evaluation = json.loads((tmp_path / "metrics.json").read_text())["evaluation"]
    positives = evaluation["users"] * evaluation["model"]["base_rate"]
    assert min(positives, evaluation["users"] - positives) > 4_000
    assert abs(evaluation["model"]["roc_auc"] - 0.5) < 0.02


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney: the chance a positive outranks a negative, ties counting half."""
    ranks = rankdata(score)
    positives = label.astype(bool)
    n1, n0 = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _average_precision(score: np.ndarray, label: np.ndarray) -> float:
    """Precision at each distinct score threshold, weighted by the recall it adds."""
    total, ap, hits, seen = label.sum(), 0.0, 0, 0
    for value in np.unique(score)[::-1]:
        at = score == value
        hits, seen = hits + label[at].sum(), seen + at.sum()
        ap += label[at].sum() / total * hits / seen
    return float(ap)


@pytest.mark.parametrize("target", ["conversion", "churn"])
def test_metrics_can_be_recomputed_from_the_scores(
    data: Path, predicted: dict[str, Path], target: str
) -> None:
    """metrics.json equals a recomputation from scores.parquet and labels taken from the
    events by DuckDB SQL."""
    scores = pl.read_parquet(predicted[target] / "scores.parquet")
    found = json.loads((predicted[target] / "metrics.json").read_text())
    cutoff = dt.datetime.fromisoformat(found["cutoff"])
    window = f"ts >= TIMESTAMPTZ '{cutoff.isoformat()}' AND ts < TIMESTAMPTZ '{cutoff.isoformat()}' + INTERVAL 7 DAY"
    connection = duckdb.connect()
    connection.sql("SET TimeZone = 'UTC'")
    outcome = connection.sql(
        f"SELECT user_id, bool_or(event_type = 'purchase') AS bought FROM "
        f"read_parquet('{data / 'events'}/*.parquet') WHERE {window} GROUP BY user_id"
    ).pl()
    joined = scores.join(outcome, on="user_id", how="left")
    if target == "conversion":
        label = joined["bought"].fill_null(False).to_numpy()
    else:
        label = joined["bought"].is_null().to_numpy()
    score = joined["score"].to_numpy()
    model = found["evaluation"]["model"]
    assert found["evaluation"]["users"] == scores.height
    assert model["base_rate"] == pytest.approx(label.mean(), rel=1e-12)
    assert model["roc_auc"] == pytest.approx(_auc(score, label), rel=1e-9)
    assert model["pr_auc"] == pytest.approx(_average_precision(score, label), rel=1e-9)
    assert model["brier"] == pytest.approx(np.mean((score - label) ** 2), rel=1e-9)
    calibration = pl.DataFrame(found["calibration"])
    assert calibration["users"].sum() == score.size
    assert (calibration["observed"] * calibration["users"]).sum() == pytest.approx(label.sum())
    assert (calibration["predicted"] * calibration["users"]).sum() == pytest.approx(score.sum())
    top = np.argsort(-score, kind="stable")[: int(np.ceil(0.1 * score.size))]
    assert model["lift_top_decile"] == pytest.approx(label[top].mean() / label.mean(), rel=0.02)


def test_lift_shares_ties_fairly() -> None:
    score = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    label = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0], dtype=float)
    # the top 20% are two of the four tied rows, which hold one positive in four
    assert lift_at(score, label, 0.2) == pytest.approx((2 * 0.25 / 2) / 0.2)
    assert lift_at(score[::-1], label[::-1], 0.2) == lift_at(score, label, 0.2)


@pytest.mark.parametrize("target", ["conversion", "churn"])
def test_beats_the_baselines_on_the_planted_process(
    data: Path, predicted: dict[str, Path], target: str
) -> None:
    """Held-out quality on data whose answer is not leaked: the labels come from the planted
    BG/NBD process, lapses and arrivals, not from any rule over the features. The oracle
    is the same model given the planted hidden state as well (benchmarks.predict_quality).
    """
    found = json.loads((predicted[target] / "metrics.json").read_text())["evaluation"]
    model, baselines = found["model"], found["baselines"]
    best = max(b["roc_auc"] for b in baselines.values())
    assert model["roc_auc"] >= best + 0.02
    base = model["base_rate"]
    assert model["brier"] < base * (1 - base)
    config = PredictConfig(target=target, horizon_days=7)  # type: ignore[arg-type]
    oracle = oracle_aucs(data, config, {"oracle": TRUTH_COLUMNS})["oracle"]
    if target == "conversion":
        assert model["lift_top_decile"] >= 3
        # Below 0.95 (README, benchmarks/results/predict.json): the hidden state
        # tells who will never buy, which behaviour before a first purchase cannot.
        assert model["roc_auc"] >= 0.9 * oracle
    else:  # the lift of churn is bounded by 1 / base rate
        assert model["lift_top_decile"] >= 1.5
        assert model["roc_auc"] >= 0.95 * oracle


def test_user_ranges_give_the_same_scores(
    data: Path, predicted: dict[str, Path], tmp_path: Path
) -> None:
    """User-range parts (bounded memory) give the very scores of one whole part."""
    whole = pl.read_parquet(predicted["conversion"] / "scores.parquet")
    dataset = load_dataset(data)
    ranged = predict_from_data(dataset, PredictConfig(), tmp_path, "error", range_users=7_000)
    assert_frame_equal(whole, ranged.scores)
    found, whole_found = (
        json.loads((path / "metrics.json").read_text())
        for path in (tmp_path, predicted["conversion"])
    )
    assert found.pop("timings_s").keys() == whole_found.pop("timings_s").keys()
    assert found == whole_found


def test_predict_command(data: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "engine.cli", "predict"]
    out = tmp_path / "churn"
    proc = subprocess.run(
        [*command, str(data), "--target", "churn", "--horizon-days", "14", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "ROC AUC" in proc.stderr  # rich writes to stderr, leaving stdout to data
    scores = pl.read_parquet(out / "scores.parquet")
    assert scores.columns == ["user_id", "score"] and scores["score"].is_between(0, 1).all()
    found = json.loads((out / "metrics.json").read_text())
    assert found["target"] == "churn" and len(found["training_cutoffs"]) == 3
    # a cutoff too early to train: one line, no traceback
    proc = subprocess.run(
        [*command, str(data), "--cutoff", "2026-10-03", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "no training cutoff" in proc.stderr


def test_a_foreign_log_is_predicted_with_its_own_ids(tmp_path: Path) -> None:
    native = tmp_path / "native"
    generate_dataset(SynthConfig(users=6_000, products=800, days=45, seed=5), native)
    log = write_rees46(native, tmp_path / "log" / "export.csv")[0]
    out = tmp_path / "out" / "predict"
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "predict", str(log), "--preset", "rees46",
         "--out", str(out)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    scores = pl.read_parquet(out / "scores.parquet")
    known = pl.scan_parquet(native / "events" / "*.parquet").select("user_id").unique().collect()
    assert scores["user_id"].is_in(known["user_id"].implode()).all()  # REES46 ids kept
    assert scores.height > 3_000
