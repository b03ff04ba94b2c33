"""K-Means on sparse rows: ours (the drop-in, scikit-learn's settings, CSR kernels) vs
scikit-learn's MiniBatchKMeans (default, and with uniform batches as before 1.6) on the
same CSR matrix: text-like rows (L2-normalised, mostly words of their topic), k = 8.

Recorded per run: wall time (median of repeats under half a second, as the dense
benchmark), inertia recomputed by scikit-learn's euclidean_distances for everyone, and ARI
against the planted topics. The guard sits well below the measured ratio; the figures are in
benchmarks/results/ and the README table generated from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import MiniBatchKMeans as SkMiniBatchKMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.pairwise import euclidean_distances

from benchmarks.conftest import Profile
from benchmarks.test_bench_kmeans import UniformBatches, timed
from engine.kmeans import MiniBatchKMeans

GUARD_VS_SK_DEFAULT = 2.0
GUARD_INERTIA = 1.01  # median over seeds, against scikit-learn's default
N_FEATURES, TOPICS, WORDS_PER_ROW, TOPIC_WORDS = 5_000, 8, 30, 200


def topic_rows(n: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """n rows of WORDS_PER_ROW words, three in four from their topic's TOPIC_WORDS."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, TOPICS, n)
    vocab = np.stack([rng.choice(N_FEATURES, TOPIC_WORDS, replace=False) for _ in range(TOPICS)])
    own = vocab[topics[:, None], rng.integers(0, TOPIC_WORDS, (n, WORDS_PER_ROW))]
    anywhere = rng.integers(0, N_FEATURES, (n, WORDS_PER_ROW))
    cols = np.where(rng.random((n, WORDS_PER_ROW)) < 0.75, own, anywhere)
    rows = np.repeat(np.arange(n), WORDS_PER_ROW)
    X = sp.csr_matrix(
        (rng.exponential(size=rows.size), (rows, cols.ravel())), shape=(n, N_FEATURES)
    )
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    return sp.csr_matrix(sp.diags(1 / norms) @ X), topics


def inertia(X: sp.csr_matrix, centers: np.ndarray) -> float:
    return float(euclidean_distances(X, centers, squared=True).min(axis=1).sum())


def test_sparse_kmeans_vs_scikit_learn(benchmark: Any, profile: Profile) -> None:
    n = profile.kmeans_sizes[0] // 5
    X, topics = topic_rows(n, seed=7)
    MiniBatchKMeans(8, random_state=0).fit(X[:5_000])  # compile outside the timing
    peers = {
        "ours": lambda s: MiniBatchKMeans(8, random_state=s).fit(X),
        "sk_minibatch": lambda s: SkMiniBatchKMeans(8, random_state=s).fit(X),
        "sk_minibatch_uniform": lambda s: SkMiniBatchKMeans(8, random_state=UniformBatches(s)).fit(
            X
        ),
    }
    runs = []
    for seed in range(3):
        for name, fit in peers.items():
            seconds, model = timed(lambda fit=fit, seed=seed: fit(seed))
            runs.append(
                {
                    "impl": name,
                    "seed": seed,
                    "seconds": seconds,
                    "inertia": inertia(X, model.cluster_centers_),
                    "ari": adjusted_rand_score(topics, model.labels_),
                }
            )
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the table is the result

    def median(impl: str, key: str) -> float:
        return float(np.median([r[key] for r in runs if r["impl"] == impl]))

    summary = {
        "n": n,
        "n_features": N_FEATURES,
        "nnz": int(X.nnz),
        "ours_s": median("ours", "seconds"),
        "vs_sk_minibatch": median("sk_minibatch", "seconds") / median("ours", "seconds"),
        "vs_sk_minibatch_uniform": median("sk_minibatch_uniform", "seconds")
        / median("ours", "seconds"),
        "inertia_vs_sk_minibatch": median("ours", "inertia") / median("sk_minibatch", "inertia"),
        "ari": median("ours", "ari"),
        "sk_ari": median("sk_minibatch", "ari"),
    }
    benchmark.extra_info.update(runs=runs, summary=summary)
    print(
        f"\nsparse kmeans n={n:,} x {N_FEATURES:,} ({X.nnz:,} non-zeros): ours "
        f"{summary['ours_s']:.3f} s, x{summary['vs_sk_minibatch']:.1f} vs MBK default, "
        f"x{summary['vs_sk_minibatch_uniform']:.1f} vs MBK uniform; median inertia "
        f"x{summary['inertia_vs_sk_minibatch']:.4f}; ARI {summary['ari']:.3f} "
        f"(scikit-learn {summary['sk_ari']:.3f})"
    )
    assert summary["vs_sk_minibatch"] >= GUARD_VS_SK_DEFAULT
    assert summary["inertia_vs_sk_minibatch"] <= GUARD_INERTIA
