"""The Dask backend: the stable hash, the bucketed layout, and equality with the serial path
on real LocalClusters (threads for the fast tests, processes for the end-to-end ones)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.datasets import make_blobs

import engine
import engine.segments.choose_k as segments_module
from engine.distributed import compute_features_distributed, connect, segment_distributed
from engine.exceptions import ConfigError, EcomscaleError
from engine.features import compute_features
from engine.io.partition import partition_dataset
from engine.kmeans import FAST_SETTINGS, MiniBatchKMeans
from engine.kmeans.dask_rows import DaskRows
from engine.schema import HASH_MULTIPLIER, user_bucket, user_bucket_np
from engine.segments import Segmentation, segment
from synth import SynthConfig, generate_dataset

distributed = pytest.importorskip("distributed")
USERS = 3_000


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distributed")
    config = SynthConfig(users=USERS, products=500, days=14, seed=3)
    generate_dataset(config, root / "ranges")
    bucketed = SynthConfig(users=USERS, products=500, days=14, seed=3, buckets=6)
    generate_dataset(bucketed, root / "buckets")
    return {"ranges": root / "ranges", "buckets": root / "buckets"}


@pytest.fixture(scope="module")
def serial(datasets: dict[str, Path]) -> tuple[pl.DataFrame, Segmentation]:
    features = compute_features(engine.load_dataset(datasets["ranges"])).features
    assert features is not None
    return features, segment(features, seed=1)


@pytest.fixture(scope="module")
def threads_client():  # type: ignore[no-untyped-def]
    with connect(local_cluster=2, processes=False) as client:
        yield client


def test_user_hash_matches_numpy_and_duckdb() -> None:
    ids = np.concatenate([[0, 1, 2**32 - 1], np.random.default_rng(0).integers(0, 2**32, 5000)])
    ids = ids.astype(np.uint32)
    ours = pl.select(user_bucket(pl.lit(pl.Series("u", ids)), 37)).to_series().to_numpy()
    twin = user_bucket_np(ids, 37)
    frame = pl.DataFrame({"u": ids})  # noqa: F841 (read by DuckDB's replacement scan)
    sql = duckdb.sql(
        f"SELECT ((u::UBIGINT * {HASH_MULTIPLIER}) % 4294967296) * 37 // 4294967296 AS b FROM frame"
    ).pl()["b"]
    np.testing.assert_array_equal(ours, twin)
    np.testing.assert_array_equal(ours, sql.to_numpy())
    assert np.bincount(ours, minlength=37).min() > 5000 / 37 * 0.6  # spread over buckets


def test_bucketed_layout_holds_the_same_events(datasets: dict[str, Path]) -> None:
    ranges = pl.read_parquet(datasets["ranges"] / "events" / "*.parquet")
    files = sorted((datasets["buckets"] / "events").rglob("*.parquet"))
    assert {f.parent.name for f in files} == {f"bucket={b:05d}" for b in range(6)}
    parts = []
    for file in files:
        part = pl.read_parquet(file)
        bucket = int(file.parent.name.split("=")[1])
        assert (user_bucket_np(part["user_id"].to_numpy(), 6) == bucket).all(), file
        assert part.select(pl.struct("user_id", "ts").is_sorted()).item() or part.equals(
            part.sort("user_id", "ts", maintain_order=True)
        ), file
        parts.append(part)
    bucketed = pl.concat(parts).sort("user_id", "ts", maintain_order=True)
    assert_frame_equal(bucketed, ranges)


def test_bucketed_generation_is_deterministic(tmp_path: Path) -> None:
    config = SynthConfig(users=9_000, products=500, days=7, seed=5, buckets=4, part_users=4096)
    generate_dataset(config, tmp_path / "one", workers=1)
    generate_dataset(config, tmp_path / "two", workers=2)
    for file in sorted((tmp_path / "one" / "events").rglob("*.parquet")):
        twin = tmp_path / "two" / file.relative_to(tmp_path / "one")
        assert file.read_bytes() == twin.read_bytes(), file


def test_serial_features_are_the_same_on_either_layout(
    datasets: dict[str, Path], serial: tuple[pl.DataFrame, Segmentation]
) -> None:
    features = compute_features(engine.load_dataset(datasets["buckets"])).features
    assert features is not None
    assert_frame_equal(features, serial[0])


def test_distributed_features_and_segments_equal_serial(
    datasets: dict[str, Path],
    serial: tuple[pl.DataFrame, Segmentation],
    threads_client: distributed.Client,
) -> None:
    on_cluster = compute_features_distributed(
        threads_client, engine.load_dataset(datasets["buckets"])
    )
    assert_frame_equal(on_cluster.gather(), serial[0])
    seg = segment_distributed(threads_client, on_cluster.parts, seed=1)
    expected = serial[1]
    assert seg.k == expected.k
    assert_frame_equal(seg.assignments, expected.assignments)
    assert_frame_equal(seg.profiles, expected.profiles, rel_tol=1e-9)
    assert_frame_equal(seg.k_scores, expected.k_scores, rel_tol=1e-9)
    assert seg.inertia == pytest.approx(expected.inertia, rel=1e-12)


def test_k_chosen_on_a_sample_is_the_same_distributed(
    datasets: dict[str, Path],
    threads_client: distributed.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(segments_module, "CHOOSE_K_ROWS", 3_000)
    features = compute_features(engine.load_dataset(datasets["ranges"])).features
    assert features is not None
    expected = segment(features, seed=1)
    on_cluster = compute_features_distributed(
        threads_client, engine.load_dataset(datasets["buckets"])
    )
    seg = segment_distributed(threads_client, on_cluster.parts, seed=1)
    assert seg.k == expected.k
    assert_frame_equal(seg.assignments, expected.assignments)
    assert_frame_equal(seg.k_scores, expected.k_scores, rel_tol=1e-9)


@pytest.mark.parametrize(
    "settings", [{**FAST_SETTINGS, "n_runs": 2}, {}], ids=["fast-2-runs", "scikit-learn"]
)
def test_distributed_kmeans_matches_serial_fit(
    threads_client: distributed.Client, settings: dict[str, Any]
) -> None:
    X, _ = make_blobs(20_000, n_features=6, centers=5, cluster_std=2.0, random_state=4)
    X = X.astype(np.float32)
    serial = MiniBatchKMeans(5, random_state=7, **settings).fit(X)
    for cuts in ([7_000], [1, 9_000, 15_000]):  # two partitionings of the same rows
        pieces = np.split(X, cuts)
        futures = [threads_client.scatter(piece) for piece in pieces]
        data = DaskRows(threads_client, futures, [len(p) for p in pieces])
        model = MiniBatchKMeans(5, random_state=7, **settings)
        handle = model.fit_rows(data)
        labels = data.labels_at(handle, np.arange(len(X)))
        np.testing.assert_array_equal(labels, serial.labels_)
        np.testing.assert_allclose(model.cluster_centers_, serial.cluster_centers_, rtol=1e-6)
        assert model.inertia_ == pytest.approx(serial.inertia_, rel=1e-12)
        assert (model.n_steps_, model.n_iter_) == (serial.n_steps_, serial.n_iter_)


def test_distributed_path_needs_the_bucketed_layout(
    datasets: dict[str, Path], threads_client: distributed.Client
) -> None:
    with pytest.raises(ConfigError, match="ecomscale partition"):
        compute_features_distributed(threads_client, engine.load_dataset(datasets["ranges"]))


def test_unreachable_scheduler_is_a_clear_error() -> None:
    unreachable = pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://")
    with unreachable, connect("tcp://127.0.0.1:9", timeout_s=1):
        pass


def test_partition_of_a_foreign_log_gives_the_same_features(
    tmp_path: Path, datasets: dict[str, Path], serial: tuple[pl.DataFrame, Segmentation]
) -> None:
    events = pl.read_parquet(datasets["ranges"] / "events" / "*.parquet")
    shuffled = events.sample(fraction=1.0, shuffle=True, seed=2)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shuffled.with_columns(pl.col("event_type").cast(pl.String)).write_parquet(
        foreign / "log.parquet"
    )
    source = engine.load_dataset(foreign)
    source_features = compute_features(source).features
    manifest, report = partition_dataset(source, tmp_path / "bucketed", 5)
    assert manifest["layout"] == {"buckets": 5} and report.rows_out == events.height
    assert not list(tmp_path.glob(".bucketed*"))  # staging renamed away
    bucketed = engine.load_dataset(tmp_path / "bucketed")
    assert len(bucketed.buckets) == 5
    assert_frame_equal(compute_features(bucketed).features, source_features)  # type: ignore[arg-type]
    with pytest.raises(EcomscaleError, match="already exists"):
        partition_dataset(source, tmp_path / "bucketed", 5)


@pytest.mark.slow
def test_worker_killed_mid_run_still_gives_the_serial_result(
    datasets: dict[str, Path], serial: tuple[pl.DataFrame, Segmentation]
) -> None:
    environ = dict(os.environ)
    with connect(local_cluster=2) as client:  # worker processes, restarted by their nannies
        on_cluster = compute_features_distributed(client, engine.load_dataset(datasets["buckets"]))
        distributed.wait(on_cluster.parts)
        holders = {addr for addrs in client.who_has(on_cluster.parts).values() for addr in addrs}
        victim = sorted(holders)[0]
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, signal.SIGKILL)  # its features are lost and must be recomputed
        seg = segment_distributed(client, on_cluster.parts, seed=1)
        assert_frame_equal(on_cluster.gather(), serial[0])
    assert_frame_equal(seg.assignments, serial[1].assignments)
    assert dict(os.environ) == environ  # the workers' thread pins do not leak into ours


@pytest.mark.slow
def test_cli_run_on_a_local_cluster_writes_the_serial_outputs(
    tmp_path: Path, datasets: dict[str, Path]
) -> None:
    def run(*extra: str) -> Path:
        out = tmp_path / ("cluster" if extra else "serial")
        cmd = [sys.executable, "-m", "engine.cli", "run", str(datasets["buckets"]), "--out"]
        done = subprocess.run([*cmd, str(out), *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return out

    serial_out, cluster_out = run(), run("--local-cluster", "2")
    for name in (
        "features.parquet",
        "segments.parquet",
        "insights/funnel.parquet",
        "cohorts/retention.parquet",
        "cohorts/lifecycle.parquet",
        "cohorts/retention_by_segment.parquet",
    ):
        assert_frame_equal(pl.read_parquet(cluster_out / name), pl.read_parquet(serial_out / name))
    revenue = "cohorts/revenue_retention.parquet"
    assert_frame_equal(
        pl.read_parquet(cluster_out / revenue), pl.read_parquet(serial_out / revenue), rel_tol=1e-12
    )
    assert (cluster_out / "report.html").stat().st_size > 100_000


def ecomscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_features_and_segment_on_a_local_cluster(
    tmp_path: Path, datasets: dict[str, Path], serial: tuple[pl.DataFrame, Segmentation]
) -> None:
    bucketed = tmp_path / "bucketed"
    done = ecomscale("partition", str(datasets["ranges"]), "--buckets", "4", "--out", str(bucketed))
    assert done.returncode == 0 and "4 buckets" in done.stderr, done.stderr
    feats, segs = tmp_path / "f.parquet", tmp_path / "s.parquet"
    cluster = ("--local-cluster", "2")
    done = ecomscale("features", str(bucketed), "--out", str(feats), *cluster)
    assert done.returncode == 0 and "2 workers" in done.stderr, done.stderr
    assert_frame_equal(pl.read_parquet(feats), serial[0])
    done = ecomscale("segment", str(feats), "--out", str(segs), "--seed", "1", *cluster)
    assert done.returncode == 0, done.stderr
    assert_frame_equal(pl.read_parquet(segs), serial[1].assignments)
    # the range layout on a cluster: laid out in buckets beside the output, then reused
    ranged = tmp_path / "ranged" / "f.parquet"
    for _ in range(2):
        done = ecomscale("features", str(datasets["ranges"]), "--out", str(ranged), *cluster)
        assert done.returncode == 0, done.stderr
    assert "source unchanged" in done.stderr
    assert (tmp_path / "ranged" / "data-buckets" / "events" / "bucket=00015").is_dir()
    assert_frame_equal(pl.read_parquet(ranged), serial[0])


def test_cli_unreachable_scheduler_is_one_line(datasets: dict[str, Path]) -> None:
    done = ecomscale("features", str(datasets["buckets"]), "--scheduler", "tcp://127.0.0.1:9")
    assert done.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
