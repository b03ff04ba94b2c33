"""engine.MiniBatchKMeans as a drop-in: scikit-learn's own MiniBatchKMeans tests, run on both.

Each test below calls the test of the same name in scikit-learn's test suite
(``sklearn/cluster/tests/test_k_means.py``, shipped with scikit-learn), with its assertions
unchanged, once for scikit-learn's MiniBatchKMeans and once for ours. Tests that read the
module's ``MiniBatchKMeans`` get ours patched in. The tests that call scikit-learn's private
step function have their twins at the end, through the public API.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.cluster.tests.test_k_means as sk
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import pairwise_distances

from engine.kmeans import MiniBatchKMeans

SEEDS = [0, 42]  # scikit-learn's global_random_seed: 42 by default, any in its CI
INPUTS = [sk.X, *sk.X_as_any_csr]
INPUT_IDS = sk.data_containers_ids
INITS = ["random", "k-means++", sk.centers, lambda X, k, random_state: sk.centers.copy()]
INIT_IDS = ["random", "k-means++", "ndarray", "callable"]


@pytest.fixture(params=["scikit-learn", "ecomscale"])
def Estimator(request: Any, monkeypatch: pytest.MonkeyPatch) -> type:
    """Either estimator; with ours, scikit-learn's test module sees ours as MiniBatchKMeans."""
    if request.param == "ecomscale":
        monkeypatch.setattr(sk, "MiniBatchKMeans", MiniBatchKMeans)
        return MiniBatchKMeans
    return SkMiniBatchKMeans


@pytest.mark.parametrize("init", INITS, ids=INIT_IDS)
@pytest.mark.parametrize("input_data", INPUTS, ids=INPUT_IDS)
def test_all_init(Estimator: type, input_data: Any, init: Any) -> None:
    sk.test_all_init(Estimator, input_data, init)


@pytest.mark.parametrize("init", INITS, ids=INIT_IDS)
def test_minibatch_kmeans_partial_fit_init(Estimator: type, init: Any) -> None:
    sk.test_minibatch_kmeans_partial_fit_init(init)


@pytest.mark.parametrize(
    "init, expected_n_init",
    [
        ("k-means++", 1),
        ("random", "default"),
        (lambda X, k, random_state: random_state.uniform(size=(k, X.shape[1])), "default"),
        ("array-like", 1),
    ],
)
def test_kmeans_init_auto_with_initial_centroids(
    Estimator: type, init: Any, expected_n_init: Any
) -> None:
    sk.test_kmeans_init_auto_with_initial_centroids(Estimator, init, expected_n_init)


@pytest.mark.parametrize("seed", SEEDS)
def test_fortran_aligned_data(Estimator: type, seed: int) -> None:
    sk.test_fortran_aligned_data(Estimator, seed)


def test_minibatch_kmeans_verbose(Estimator: type) -> None:
    sk.test_minibatch_kmeans_verbose()


def test_minibatch_kmeans_warning_init_size(Estimator: type) -> None:
    sk.test_minibatch_kmeans_warning_init_size()


def test_warning_n_init_precomputed_centers(Estimator: type) -> None:
    sk.test_warning_n_init_precomputed_centers(Estimator)


@pytest.mark.parametrize("seed", SEEDS)
def test_minibatch_sensible_reassign(Estimator: type, seed: int) -> None:
    sk.test_minibatch_sensible_reassign(seed)


def test_minibatch_with_many_reassignments(Estimator: type, capsys: Any) -> None:
    sk.test_minibatch_with_many_reassignments()
    assert "Reassigning" in capsys.readouterr().out


def test_minibatch_kmeans_init_size(Estimator: type) -> None:
    sk.test_minibatch_kmeans_init_size()


@pytest.mark.parametrize("tol, max_no_improvement", [(1e-4, None), (0, 10)])
def test_minibatch_declared_convergence(
    Estimator: type, capsys: Any, tol: float, max_no_improvement: int | None
) -> None:
    sk.test_minibatch_declared_convergence(capsys, tol, max_no_improvement)


def test_minibatch_iter_steps(Estimator: type) -> None:
    sk.test_minibatch_iter_steps()


@pytest.mark.parametrize("seed", SEEDS)
def test_score_max_iter(Estimator: type, seed: int) -> None:
    sk.test_score_max_iter(Estimator, seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("max_iter", [2, 100])
@pytest.mark.parametrize("array_constr", sk.data_containers, ids=INPUT_IDS)
def test_kmeans_predict(Estimator: type, array_constr: Any, max_iter: int, dtype: Any) -> None:
    sk.test_kmeans_predict(Estimator, None, array_constr, max_iter, dtype, 42)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("X_csr", sk.X_as_any_csr)
def test_dense_sparse(Estimator: type, X_csr: Any, seed: int) -> None:
    sk.test_dense_sparse(Estimator, X_csr, seed)


@pytest.mark.parametrize("init", INITS[:3], ids=INIT_IDS[:3])
@pytest.mark.parametrize("X_csr", sk.X_as_any_csr)
def test_predict_dense_sparse(Estimator: type, init: Any, X_csr: Any) -> None:
    sk.test_predict_dense_sparse(Estimator, init, X_csr)


@pytest.mark.parametrize("init", ["k-means++", "ndarray"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("array_constr", sk.data_containers, ids=INPUT_IDS)
def test_integer_input(Estimator: type, array_constr: Any, dtype: Any, init: str) -> None:
    sk.test_integer_input(Estimator, array_constr, dtype, init, 42)


@pytest.mark.parametrize("seed", SEEDS)
def test_transform(Estimator: type, seed: int) -> None:
    sk.test_transform(Estimator, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_fit_transform(Estimator: type, seed: int) -> None:
    sk.test_fit_transform(Estimator, seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("input_data", INPUTS, ids=INPUT_IDS)
def test_float_precision(Estimator: type, input_data: Any, seed: int) -> None:
    sk.test_float_precision(Estimator, input_data, seed)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_centers_not_mutated(Estimator: type, dtype: Any) -> None:
    sk.test_centers_not_mutated(Estimator, dtype)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("input_data", INPUTS, ids=INPUT_IDS)
def test_unit_weights_vs_no_weights(Estimator: type, input_data: Any, seed: int) -> None:
    sk.test_unit_weights_vs_no_weights(Estimator, input_data, seed)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("input_data", INPUTS, ids=INPUT_IDS)
def test_scaled_weights(Estimator: type, input_data: Any, seed: int) -> None:
    sk.test_scaled_weights(Estimator, input_data, seed)


@pytest.mark.parametrize("seed", SEEDS)
def test_result_equal_in_diff_n_threads(Estimator: type, seed: int) -> None:
    # (OpenMP limits: ours runs numba threads; tests/test_kmeans.py sets those instead.)
    sk.test_result_equal_in_diff_n_threads(Estimator, seed)


def test_n_init_auto(Estimator: type) -> None:
    sk.test_n_init_auto(Estimator, 3)


def test_sample_weight_unchanged(Estimator: type) -> None:
    sk.test_sample_weight_unchanged(Estimator)


@pytest.mark.parametrize(
    "param, match",
    [
        ({"n_clusters": sk.n_samples + 1}, r"n_samples.* should be >= n_clusters"),
        (
            {"init": sk.X[:2]},
            r"The shape of the initial centers .* does not match the number of clusters",
        ),
        (
            {"init": lambda X_, k, random_state: X_[:2]},
            r"The shape of the initial centers .* does not match the number of clusters",
        ),
        (
            {"init": sk.X[:8, :2]},
            r"The shape of the initial centers .* does not match the number of features",
        ),
        (
            {"init": lambda X_, k, random_state: X_[:8, :2]},
            r"The shape of the initial centers .* does not match the number of features",
        ),
    ],
)
def test_wrong_params(Estimator: type, param: dict[str, Any], match: str) -> None:
    sk.test_wrong_params(Estimator, param, match)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_feature_names_out(Estimator: type, method: str) -> None:
    sk.test_feature_names_out(Estimator, method)


# Twins of scikit-learn's tests that need its private functions or KMeans, through the
# public API.


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("input_data", INPUTS, ids=INPUT_IDS)
def test_minibatch_reassign(Estimator: type, input_data: Any, seed: int) -> None:
    """From perfect centres, one step with reassignment_ratio=1 moves centres away (worse
    score); with 1e-15 no centre is reassigned (test_minibatch_reassign)."""
    perfect = np.array([sk.X[sk.true_labels == i].mean(axis=0) for i in range(sk.n_clusters)])
    score_before = -((sk.X - perfect[sk.true_labels]) ** 2).sum()
    for ratio, worse in [(1.0, True), (1e-15, False)]:
        km = Estimator(sk.n_clusters, init=perfect, n_init=1, random_state=seed)
        km.set_params(reassignment_ratio=ratio, batch_size=sk.n_samples).partial_fit(input_data)
        if worse:
            assert km.score(sk.X) < score_before
        else:
            np.testing.assert_allclose(km.cluster_centers_, perfect, rtol=1e-12)


@pytest.mark.parametrize("init", ["k-means++", np.str_("k-means++"), "array"])
def test_array_like_or_np_scalar_init(Estimator: type, init: Any) -> None:
    X = np.asarray([[0, 0], [0.5, 0], [0.5, 1], [1, 1]], dtype=np.float64)
    params = {"init": [[0, 0], [1, 1]], "n_init": 1} if init == "array" else {"init": init}
    assert Estimator(n_clusters=2, batch_size=2, **params).fit(X).cluster_centers_.shape == (2, 2)


@pytest.mark.parametrize("sparse", [False, True])
def test_predict_does_not_change_cluster_centers(Estimator: type, sparse: bool) -> None:
    X, _ = make_blobs(n_samples=200, n_features=10, centers=10, random_state=0)
    X = sp.csr_matrix(X) if sparse else X
    km = Estimator(n_clusters=10, random_state=0)
    labels = km.fit_predict(X)
    km.cluster_centers_.setflags(write=False)
    np.testing.assert_array_equal(km.predict(X), labels)


@pytest.mark.parametrize("sparse", [False, True])
def test_sample_weight_everywhere(Estimator: type, sparse: bool) -> None:
    """fit, partial_fit, fit_predict, fit_transform and score take sample_weight; a zero
    weight removes a row from score and never makes it a "random" start."""
    X, _ = make_blobs(n_samples=300, n_features=4, centers=3, random_state=1)
    w = np.random.default_rng(0).uniform(size=300)
    w[::3] = 0.0
    data = sp.csr_matrix(X) if sparse else X
    km = Estimator(3, init="random", n_init=3, random_state=0).fit(data, sample_weight=w)
    d = ((X[:, None, :] - km.cluster_centers_[None]) ** 2).sum(axis=2).min(axis=1)
    assert km.score(data, sample_weight=w) == pytest.approx(-(w * d).sum(), rel=1e-9)
    assert km.fit_predict(data, sample_weight=w).shape == (300,)
    assert km.fit_transform(data, sample_weight=w).shape == (300, 3)
    km.partial_fit(data, sample_weight=w)
    assert km.n_steps_ >= 1


def test_set_output_pandas(Estimator: type) -> None:
    pd = pytest.importorskip("pandas")
    km = Estimator(3, random_state=0).set_output(transform="pandas")
    frame = km.fit(sk.X).transform(sk.X)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == [f"minibatchkmeans{i}" for i in range(3)]
    np.testing.assert_allclose(frame.to_numpy(), pairwise_distances(sk.X, km.cluster_centers_))


def test_csc_and_sparse_arrays_give_the_csr_result(Estimator: type) -> None:
    csr = Estimator(3, random_state=0).fit(sp.csr_matrix(sk.X))
    for data in (sp.csc_matrix(sk.X), sp.csr_array(sk.X), sp.csc_array(sk.X)):
        other = Estimator(3, random_state=0).fit(data)
        np.testing.assert_array_equal(other.labels_, csr.labels_)
        np.testing.assert_allclose(other.cluster_centers_, csr.cluster_centers_)


def test_compute_labels_false(Estimator: type) -> None:
    """No labels_; inertia_ is the EWA of the batch inertias, an estimate of the real one."""
    X, _ = make_blobs(n_samples=5000, n_features=4, centers=4, random_state=2)
    km = Estimator(4, compute_labels=False, batch_size=256, random_state=0).fit(X)
    assert not hasattr(km, "labels_")
    assert km.inertia_ == pytest.approx(-km.score(X), rel=0.1)
    km.partial_fit(X[:300])
    assert not hasattr(km, "labels_")


def test_same_quality_as_scikit_learn_at_its_settings() -> None:
    """Different random streams, the same algorithm: over 20 seeds, the median inertia ours
    reaches at scikit-learn's defaults is scikit-learn's (overlapping blobs, k = 8). A single
    seed's pair may land in different local optima, so one pair proves nothing."""
    X, _ = make_blobs(n_samples=30_000, n_features=8, centers=8, cluster_std=4.0, random_state=3)
    ours = np.median([MiniBatchKMeans(8, random_state=s).fit(X).inertia_ for s in range(20)])
    theirs = np.median([SkMiniBatchKMeans(8, random_state=s).fit(X).inertia_ for s in range(20)])
    assert ours / theirs == pytest.approx(1.0, abs=0.01)
