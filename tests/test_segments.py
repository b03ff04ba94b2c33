"""Segments: preparation, naming rules, a golden summary, persona recovery on the default data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.metrics import pairwise_distances, silhouette_score

import engine.segments.choose_k as segments_module
from engine.exceptions import ConfigError, DataValidationError
from engine.features import compute_features
from engine.insights import persona_agreement
from engine.io.dataset import load_dataset
from engine.segments import segment
from engine.segments.choose_k import silhouette
from engine.segments.naming import name_segments
from engine.segments.prepare import BEHAVIOUR_COLUMNS, CATEGORY_BLOCK_WEIGHT, prepare
from synth import SynthConfig, generate_dataset

GOLDEN = Path(__file__).parent / "golden" / "segments_small.json"


@pytest.fixture(scope="module")
def small_features(small_dataset: Path) -> pl.DataFrame:
    return compute_features(load_dataset(small_dataset)).features


def test_prepare_standardises(small_features: pl.DataFrame) -> None:
    matrix, columns = prepare(small_features)
    assert matrix.dtype == np.float32 and matrix.shape == (small_features.height, len(columns))
    behaviour = [i for i, c in enumerate(columns) if not c.startswith("share_")]
    np.testing.assert_allclose(matrix[:, behaviour].mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(matrix[:, behaviour].std(axis=0), 1, atol=1e-3)
    assert np.isfinite(matrix).all()


def _reference_space(features: pl.DataFrame) -> np.ndarray:
    """The behavioural space of the prepare module's docstring, written out row by row in
    NumPy (float64): the independent reference for prepare."""
    sessions = features["n_sessions"].cast(pl.Float64).to_numpy()
    recency = features["recency_days"].to_numpy()
    span = features["tenure_days"].to_numpy() - recency
    views = features["n_views"].cast(pl.Float64).to_numpy()
    carts = features["n_carts"].cast(pl.Float64).to_numpy()
    p0 = carts.sum() / views.sum()
    columns = np.empty((features.height, 5))
    for i in range(features.height):
        if sessions[i] >= 2:
            gap = max(span[i] / (sessions[i] - 1), 1 / 24)
            overdue = recency[i] / gap
        else:
            overdue = 0.0
        columns[i] = (
            np.log1p(sessions[i]),
            np.log1p(overdue),
            np.log1p(features["n_purchase_sessions"][i]),
            (carts[i] + 20 * p0) / (views[i] + 20),
            features["price_index"][i] * views[i] / (views[i] + 10),
        )
    return columns


def test_prepare_matches_a_numpy_reference(small_features: pl.DataFrame) -> None:
    """prepare builds the matrix a column at a time (and in a given row order); the
    reference is the textbook formula of the module docstring, one user at a time."""
    raw = _reference_space(small_features)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    expected = (raw - mean) / np.where(std > 0, std, 1.0)
    matrix, columns = prepare(small_features)
    assert tuple(columns) == BEHAVIOUR_COLUMNS  # no category taste by default
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-5)
    order = np.random.default_rng(0).permutation(small_features.height)
    reordered, _ = prepare(small_features, order)
    np.testing.assert_array_equal(reordered, matrix[order])


def test_the_category_space_adds_the_weighted_share_block(small_features: pl.DataFrame) -> None:
    behaviour, _ = prepare(small_features)
    matrix, columns = prepare(small_features, space="behaviour+category")
    share_cols = [c for c in small_features.columns if c.startswith("share_")]
    assert columns == [*BEHAVIOUR_COLUMNS, *share_cols]
    np.testing.assert_array_equal(matrix[:, : len(BEHAVIOUR_COLUMNS)], behaviour)
    shares = small_features.select(share_cols).to_numpy()
    z = (shares - shares.mean(axis=0)) / np.where(shares.std(axis=0) > 0, shares.std(axis=0), 1)
    block = z * np.sqrt(CATEGORY_BLOCK_WEIGHT / len(share_cols))
    np.testing.assert_allclose(matrix[:, len(BEHAVIOUR_COLUMNS) :], block, rtol=1e-4, atol=1e-4)


def _profile(**overrides: float) -> dict[str, float]:
    base = {
        "segment": 0,
        "users": 100,
        "buyer_share": 0.1,
        "n_events": 10.0,
        "recency_days": 10.0,
        "n_purchase_sessions": 0.2,
        "revenue": 10.0,
        "price_index": 0.0,
        "top_category": "a",
    }
    return {**base, **overrides}


def test_naming_rules() -> None:
    rows = [
        _profile(segment=0, users=1000),
        _profile(segment=1, buyer_share=0.0, n_events=40.0),
        _profile(segment=2, recency_days=25.0),
        _profile(segment=3, buyer_share=0.9, n_purchase_sessions=4.0, revenue=300.0),
        _profile(segment=4, buyer_share=0.6, price_index=-1.0, n_purchase_sessions=3.0),
        _profile(segment=5, buyer_share=0.95, n_purchase_sessions=1.0),
        _profile(segment=6, buyer_share=0.0, n_events=3.0),
    ]
    names, rules = name_segments(pl.DataFrame(rows))
    assert names == {
        0: "mixed",
        1: "engaged non-buyers",
        2: "lapsed",
        3: "loyal high spenders",
        4: "bargain hunters",
        5: "one-time buyers",
        6: "casual browsers",
    }
    assert rules[1].startswith("buyer share < 5%")


def test_repeated_names_are_told_apart() -> None:
    rows = [
        _profile(segment=0, buyer_share=0.0, n_events=2.0, top_category="toys"),
        _profile(segment=1, buyer_share=0.0, n_events=2.0, top_category="food"),
        _profile(segment=2, users=10, buyer_share=0.5, n_events=50.0, revenue=100.0),
    ]
    names, _ = name_segments(pl.DataFrame(rows))
    assert names[0] == "casual browsers (toys, #0)" and names[1] == "casual browsers (food, #1)"


def test_golden_summary(small_features: pl.DataFrame) -> None:
    seg = segment(small_features, k="auto", seed=0)
    summary = {
        "k": seg.k,
        "segments": [
            {"name": r["segment_name"], "users": r["users"]}
            for r in seg.profiles.sort("segment").iter_rows(named=True)
        ],
    }
    if os.environ.get("ECOMSCALE_UPDATE_GOLDEN"):  # after a deliberate change; then commit it
        GOLDEN.write_text(json.dumps(summary, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert summary["k"] == golden["k"]
    assert [s["name"] for s in summary["segments"]] == [s["name"] for s in golden["segments"]]
    for ours, stored in zip(summary["segments"], golden["segments"], strict=True):
        assert abs(ours["users"] - stored["users"]) <= max(5, 0.005 * stored["users"])


def test_segmentation_is_deterministic(small_features: pl.DataFrame) -> None:
    a = segment(small_features, k=4, seed=3)
    b = segment(small_features, k=4, seed=3)
    assert a.assignments.equals(b.assignments)


def test_segments_do_not_depend_on_row_order_or_chunks(small_features: pl.DataFrame) -> None:
    """K-Means sees users in hash order whatever order they come in; their labels must go
    back to the right rows, also when the frame is made of several chunks (a features file
    read back)."""
    expected = segment(small_features, k=5, seed=1)
    shuffled = small_features.sample(fraction=1.0, shuffle=True, seed=7)
    third = shuffled.height // 3
    chunked = pl.concat(
        [shuffled[:third], shuffled[third : 2 * third], shuffled[2 * third :]], rechunk=False
    )
    assert chunked["user_id"].n_chunks() == 3
    seg = segment(chunked, k=5, seed=1)
    assert seg.assignments.equals(expected.assignments)
    assert_frame_equal(seg.profiles, expected.profiles, rel_tol=1e-9)


def test_bad_input() -> None:
    one = pl.DataFrame({"user_id": [1]})
    with pytest.raises(DataValidationError, match="at least 2 users"):
        segment(one)
    with pytest.raises(DataValidationError, match="features lack"):
        segment(pl.DataFrame({"user_id": [1, 2]}))
    with pytest.raises(DataValidationError, match=r"features lack \['user_id', "):
        segment(pl.DataFrame({"n_events": [1, 2]}))


def test_bad_k(small_features: pl.DataFrame) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        segment(small_features, k=0)


def test_empty_centres_are_dropped(small_features: pl.DataFrame) -> None:
    few = pl.concat([small_features.head(3)] * 5).with_columns(
        pl.int_range(pl.len()).cast(pl.UInt32).alias("user_id")
    )
    seg = segment(few, k=6, seed=0)
    assert seg.k == 3  # three distinct users, five copies each
    assert sorted(seg.assignments["segment"].unique().to_list()) == [0, 1, 2]
    assert (seg.profiles["users"] > 0).all()


@pytest.mark.slow
@pytest.mark.parametrize("separation", [0.0, 1.0], ids=["behaviour-only", "taste-led"])
def test_personas_are_recovered_from_behaviour(tmp_path: Path, separation: float) -> None:
    """Whether or not personas lean towards categories, the segments come from behaviour:
    the same recovery at both separations, named as planted, stable across seeds. The
    thresholds sit below what benchmarks/test_bench_segments.py measures at 100k users
    (benchmarks/results/ci.json), for this smaller, noisier sample."""
    config = SynthConfig(users=40_000, separation=separation, seed=11)
    generate_dataset(config, tmp_path / "data", workers=2)
    ds = load_dataset(tmp_path / "data")
    features = compute_features(ds).features
    seg = segment(features, k="auto", seed=0)
    assert ds.truth is not None
    truth = ds.truth.collect()
    ari, _ = persona_agreement(seg.assignments, truth)
    assert ari >= 0.3
    names = set(seg.names.values())
    assert {"engaged non-buyers", "lapsed", "one-time buyers", "bargain hunters"} <= names
    engaged = seg.profiles.filter(pl.col("segment_name") == "engaged non-buyers").row(0, named=True)
    assert engaged["buyer_share"] < 0.05
    joined = seg.assignments.join(truth, on="user_id")
    found = joined["segment_name"] == "engaged non-buyers"
    planted = joined["persona"] == "window_shopper"
    f1 = 2 * (found & planted).sum() / (found.sum() + planted.sum())
    assert f1 >= 0.45
    assert seg.stability is not None and seg.stability >= 0.95


def test_k_chosen_on_a_sample_of_a_large_input(
    small_features: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = segment(small_features, seed=2)
    monkeypatch.setattr(segments_module, "CHOOSE_K_ROWS", 5_000)  # 20k users: a 5k sample
    sampled = segment(small_features, seed=2)
    assert sampled.k_scores.height == full.k_scores.height
    # The search really ran on 5k of the 20k users (inertia is a sum over its rows).
    ratio = sampled.k_scores["inertia"] / full.k_scores["inertia"]
    assert ratio.is_between(0.15, 0.35).all()
    # The sample's scores track the full search's, and the segmentation of all users
    # with the chosen k is the one a fit of that k on all users gives.
    # Near-ties can flip the choice, so: the k the sample picks scores, in the full search,
    # within 0.01 of the best silhouette.
    full_scores = dict(full.k_scores.select("k", "silhouette").iter_rows())
    assert full_scores[sampled.k] >= max(full_scores.values()) - 0.01
    direct = segment(small_features, k=sampled.k, seed=2)
    assert sampled.assignments.equals(direct.assignments)
    # The same users in the same segments; the profiles' float means come from a streaming
    # group-by whose threads add a segment's rows in no fixed order, so two runs may differ
    # in the last bits: at most n * eps relative for n = 20k non-negative values (~4e-12).
    assert_frame_equal(sampled.profiles, direct.profiles, check_exact=False, rel_tol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_silhouette_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    X[10] = X[11]  # coinciding points
    labels = rng.integers(0, 6, size=300) * 3  # label ids with gaps
    labels[0] = 99  # a cluster of one point
    distances = pairwise_distances(X)
    expected = silhouette_score(distances, labels, metric="precomputed")
    # float32 distances are summed in float32 by both, in different orders
    assert silhouette(distances, labels) == pytest.approx(expected, rel=1e-5)
