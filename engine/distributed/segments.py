"""The segments on Dask: workers standardise their partition with statistics the driver
merges, then K-Means runs through ``DaskRows``, a RowSource whose rows live on the workers.

Because bucket b holds a contiguous run of the stable hash order, row i is the same user as
in the serial fit, whatever the number of buckets or workers.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from engine.kmeans.dask_rows import DaskRows, labels_for
from engine.schema import user_bucket
from engine.segments.choose_k import fit_segments, stability, why_k
from engine.segments.prepare import (
    Population,
    Space,
    column_moments,
    in_hash_order,
    population_sums,
    raw_columns,
    scaling,
    standardise,
)
from engine.segments.profile import merge_profiles, profile_partial, size_order
from engine.segments.stage import Segmentation, check_segmentable, named

if TYPE_CHECKING:
    from distributed import Client, Future

KMEANS_PARTITIONS = 4


def _raw(features: pl.DataFrame, population: Population, space: Space) -> np.ndarray:
    return raw_columns(features, population, space)[0]


def _columns(features: pl.DataFrame, space: Space) -> list[str]:
    return raw_columns(features.head(0), Population(0.0), space)[1]


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
    space: Space = "behaviour",
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
    check_segmentable(sum(sizes), k)
    population = Population.merge(
        client.gather([client.submit(population_sums, part) for part in parts])
    )
    columns = client.submit(_columns, parts[0], space).result()
    raws = [client.submit(_raw, part, population, space) for part in parts]
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
    seg = named(assignments, profiles, model.inertia_, columns, scores)
    steady = stability(data, k, seed)
    return dataclasses.replace(seg, why_k=why_k(scores, seg.k), stability=steady)


def _feature_partition(path: Path, bucket: int, n_buckets: int) -> pl.DataFrame:
    features = pl.scan_parquet(path).filter(user_bucket(pl.col("user_id"), n_buckets) == bucket)
    return in_hash_order(features.collect())


def features_file_partitions(client: Client, path: str | Path, n_buckets: int) -> list[Future]:
    """Partitions of a features file as tasks that each read their own bucket of users."""
    return [
        client.submit(_feature_partition, Path(path), bucket, n_buckets)
        for bucket in range(n_buckets)
    ]
