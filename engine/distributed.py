"""engine.distributed: the same pipeline on a Dask cluster (extra: ecomscale[distributed]).

Work follows the bucketed layout (engine.schema: users placed by a stable hash of user_id):

* features: one task per bucket (validate + user_features, the serial code unchanged); the
  result of each task stays on its worker, its users ordered by the stable hash;
* segments: workers standardise their partition with statistics the driver merges, then
  K-Means runs through ``DaskRows``, a RowSource whose rows live on the workers: the driver
  draws every random index, fetches only sampled rows (k-means++, mini-batches, the
  silhouette sample) and reduces per-centre sums and counts of full passes. Because bucket b
  holds a contiguous run of the hash order, row i is the same user as in the serial fit,
  whatever the number of buckets or workers.

What differs from the serial path, by design: full-pass sums are added per partition, so
centres and inertia can differ from the serial fit in the last float64 bits (labels and
segments are the same; tested). Insights and the report run on the driver, streaming the
event files, as in the serial path.

Workers read the dataset from a path they can all see (a shared or network file system) and
need ecomscale installed. Tasks are pure functions of file paths and small arrays, so a
task lost with a worker is recomputed elsewhere and the run gives the same result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl

from engine.dask_rows import DaskRows, labels_for
from engine.exceptions import ConfigError, DataValidationError
from engine.features import DEFAULT_SESSION_GAP
from engine.featurize import (
    FeatureResult,
    bucket_features,
    bucket_quarantine,
    category_list,
    clean_events,
    merge_reports,
    resolve_as_of,
    scan_bucket,
)
from engine.loading import Dataset
from engine.schema import PRODUCTS_FILE
from engine.segments import (
    Segmentation,
    column_moments,
    fit_segments,
    in_hash_order,
    merge_profiles,
    named,
    profile_partial,
    raw_columns,
    scaling,
    size_order,
    standardise,
    window_of,
)
from engine.validation import Policy

if TYPE_CHECKING:
    from distributed import Client, Future

CONNECT_TIMEOUT_S = 10
KMEANS_PARTITIONS = 4
INSTALL_HINT = "Hint: pip install 'ecomscale[distributed]'"


def require_dask() -> Any:
    """The ``distributed`` module, or a one-line ConfigError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"the distributed backend needs Dask. {INSTALL_HINT}") from None
    return distributed


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    local_cluster: int | None = None,
    *,
    threads_per_worker: int = 1,
    processes: bool = True,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[Client]:
    """A Dask client for a running scheduler, or for a local cluster started here.

    Args:
        scheduler: address of a running scheduler, e.g. tcp://10.0.0.5:8786.
        local_cluster: start this many local workers instead (processes by default).
        threads_per_worker: task threads per worker; Polars and numba in a worker process
            get as many threads, so workers x threads never oversubscribes the cores.
        processes: local workers as processes (False: threads, for tests and small data).
        timeout_s: how long to try to reach ``scheduler``.

    Raises:
        ConfigError: Dask is not installed, or the scheduler cannot be reached.
    """
    distributed = require_dask()
    import dask

    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout=f"{timeout_s}s")
        except (OSError, TimeoutError, ValueError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler} within {timeout_s:g} s "
                f"({reason}). Hint: start one "
                f"with `dask scheduler` and workers with `dask worker {scheduler}`, or use "
                "--local-cluster N"
            ) from None
        with client:
            yield client
        return
    if local_cluster is None or local_cluster < 1:
        raise ConfigError(f"local_cluster must be >= 1 workers, got {local_cluster}")
    threads = str(threads_per_worker)
    environ = {
        **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
        "POLARS_MAX_THREADS": threads,
        "NUMBA_NUM_THREADS": threads,
        "OMP_NUM_THREADS": threads,
    }
    # Nannies set these in this process's environment before spawning (so that Polars and
    # numba read them when the worker imports them) and leave them there: put them back.
    with _environ_restored(), dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = distributed.LocalCluster(
            n_workers=local_cluster,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=":0",  # any free port: clusters side by side do not clash
        )
        with cluster, distributed.Client(cluster) as client:
            yield client


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


# --- features ---------------------------------------------------------------------------------
@dataclass
class DistributedFeatures:
    """Features computed on the workers: one future per non-empty bucket, users in hash order.

    ``result`` is the serial FeatureResult equivalent (features gathered only on request).
    """

    client: Client
    parts: list[Future]
    result: FeatureResult

    def gather(self) -> pl.DataFrame:
        """All features on the driver, sorted by user_id (what the serial path returns)."""
        return pl.concat(self.client.gather(self.parts)).sort("user_id")


def _require_buckets(dataset: Dataset) -> None:
    if not dataset.buckets:
        raise ConfigError(
            f"{dataset.source}: the distributed backend needs the bucketed layout. Hint: "
            f"`ecomscale partition {dataset.source} --buckets N --out DIR` (or generate with "
            "--buckets N), then point ecomscale at DIR"
        )


def _features_task(
    files: tuple[Path, ...],
    products_path: Path | None,
    scanned: Any,
    options: dict[str, Any],
) -> tuple[pl.DataFrame, Any]:
    products = pl.scan_parquet(products_path) if products_path is not None else None
    features, report = bucket_features(files, products, scanned, **options)
    return in_hash_order(features), report


def compute_features_distributed(
    client: Client,
    dataset: Dataset,
    *,
    on_bad_rows: Policy = "error",
    quarantine_dir: str | Path | None = None,
    as_of: dt.datetime | None = None,
    session_gap: dt.timedelta = DEFAULT_SESSION_GAP,
) -> DistributedFeatures:
    """Validate and compute user features with one task per bucket; features stay on workers.

    Same arguments and validation behaviour as ``engine.compute_features``.
    """
    _require_buckets(dataset)
    if session_gap <= dt.timedelta(0):
        raise ConfigError(f"session_gap must be positive, got {session_gap}")
    categories = category_list(dataset.products)
    buckets = [b for b, files in enumerate(dataset.buckets) if files]
    scans = client.gather(
        [client.submit(scan_bucket, dataset.buckets[b], on_bad_rows) for b in buckets]
    )
    ts_max = max((s.ts_max for s in scans if s.ts_max is not None), default=None)
    if ts_max is None:
        raise DataValidationError(f"{dataset.source}: no valid events left after validation")
    as_of = resolve_as_of(as_of, ts_max)
    products = dataset.source / PRODUCTS_FILE
    products_path = products if dataset.products is not None else None
    jobs = []
    for bucket, scanned in zip(buckets, scans, strict=True):
        options = {
            "categories": categories,
            "as_of": as_of,
            "session_gap": session_gap,
            "on_bad_rows": on_bad_rows,
            "quarantine_dir": bucket_quarantine(quarantine_dir, bucket),
        }
        jobs.append(
            client.submit(_features_task, dataset.buckets[bucket], products_path, scanned, options)
        )
    parts = [client.submit(operator.getitem, job, 0) for job in jobs]
    reports = client.gather([client.submit(operator.getitem, job, 1) for job in jobs])
    del jobs  # the parts keep what they need (and their lineage, for recomputation)
    report = merge_reports(reports, on_bad_rows, quarantine_dir, resorted=False)
    events = clean_events(dataset, on_bad_rows, as_of, dict(zip(buckets, scans, strict=True)))
    result = FeatureResult(None, report, as_of, categories, events)
    return DistributedFeatures(client, parts, result)


# --- segments ---------------------------------------------------------------------------------
def _raw(features: pl.DataFrame, window: float) -> np.ndarray:
    return raw_columns(features, window)[0]


def _columns(features: pl.DataFrame) -> list[str]:
    return raw_columns(features.head(0), 1.0)[1]


def _with_segment(
    features: pl.DataFrame, matrix: np.ndarray, centers: np.ndarray, relabel: np.ndarray
) -> pl.DataFrame:
    labels = relabel[labels_for(matrix, centers)]
    return features.with_columns(pl.Series("segment", labels, dtype=pl.Int32))


def _bincount(matrix: np.ndarray, centers: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(labels_for(matrix, centers), minlength=k)


def _assignments(with_segment: pl.DataFrame) -> pl.DataFrame:
    return with_segment.select("user_id", "segment")


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames)


def _coalesce(client: Client, parts: list[Future], groups: int) -> list[Future]:
    """Consecutive partitions merged into ``groups``: K-Means makes a round trip per step,
    and each costs one task per partition. Row order (so every row index) is kept."""
    if len(parts) <= groups:
        return parts
    split = np.array_split(np.arange(len(parts)), groups)
    return [client.submit(_concat, [parts[i] for i in group.tolist()]) for group in split]


def segment_distributed(
    client: Client,
    parts: list[Future],
    k: int | Literal["auto"] = "auto",
    seed: int = 0,
    kmeans_partitions: int = KMEANS_PARTITIONS,
) -> Segmentation:
    """``engine.segment`` over feature partitions held by workers (each in hash order, the
    partitions in bucket order). Gives the serial segments for the same users.

    ``kmeans_partitions``: consecutive partitions are merged into this many for K-Means
    (fewer tasks per step; at least the number of workers that should share the passes).
    It is fixed, not taken from the cluster, so the result never depends on the number of
    workers.
    """
    parts = _coalesce(client, parts, kmeans_partitions)
    sizes = client.gather([client.submit(len, part) for part in parts])
    parts = [part for part, size in zip(parts, sizes, strict=True) if size]
    sizes = [size for size in sizes if size]
    n = sum(sizes)
    if n < 2:
        raise DataValidationError(f"need at least 2 users to segment, got {n}")
    if k != "auto" and (not isinstance(k, int) or k < 1 or k > n):
        raise ConfigError(f"k must be 'auto' or an integer in [1, {n}], got {k!r}")
    window = max(client.gather([client.submit(window_of, part) for part in parts]))
    columns = client.submit(_columns, parts[0]).result()
    raws = [client.submit(_raw, part, window) for part in parts]
    mean, std = scaling(client.gather([client.submit(column_moments, raw) for raw in raws]))
    matrices = [client.submit(standardise, raw, columns, mean, std) for raw in raws]
    data = DaskRows(client, matrices, sizes)
    # The labels handle of DaskRows is the final centres: labels are recomputed from them.
    model, centers, scores = fit_segments(data, k, seed, labels_at=data.labels_at)
    k = model.n_clusters
    counts = client.gather([client.submit(_bincount, m, centers, k) for m in matrices])
    relabel = size_order(np.sum(counts, axis=0))
    with_segment = [
        client.submit(_with_segment, part, matrix, centers, relabel)
        for part, matrix in zip(parts, matrices, strict=True)
    ]
    profiles = merge_profiles(
        client.gather([client.submit(profile_partial, w) for w in with_segment]),
        int((relabel >= 0).sum()),
    )
    assignments = pl.concat(
        client.gather([client.submit(_assignments, w) for w in with_segment])
    ).sort("user_id")
    return named(assignments, profiles, model.inertia_, columns, scores)


def _feature_partition(path: Path, bucket: int, n_buckets: int) -> pl.DataFrame:
    from engine.schema import user_bucket

    features = pl.scan_parquet(path).filter(user_bucket(pl.col("user_id"), n_buckets) == bucket)
    return in_hash_order(features.collect())


def features_file_partitions(client: Client, path: str | Path, n_buckets: int) -> list[Future]:
    """Partitions of a features file as tasks that each read their own bucket of users."""
    return [
        client.submit(_feature_partition, Path(path), bucket, n_buckets)
        for bucket in range(n_buckets)
    ]
