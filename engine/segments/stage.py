"""engine.segment: prepare the behavioural space, choose k, cluster, profile and name.

The edge of the segments package: ``SegmentConfig`` is validated once, ``segment`` returns a
``Segmentation`` and ``segment_stage`` writes it atomically.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Literal, cast

import numpy as np
import polars as pl

from engine.exceptions import ConfigError, DataValidationError
from engine.io.atomic import write_parquet_atomic
from engine.kmeans import InMemoryRows
from engine.segments.choose_k import fit_segments, stability, why_k
from engine.segments.naming import name_segments
from engine.segments.prepare import SPACES, Space, check_columns, hash_order, prepare
from engine.segments.profile import merge_profiles, profile, profile_partial, size_order


@dataclass
class Segmentation:
    """Result of ``segment``.

    Attributes:
        assignments: user_id, segment, segment_name (one row per user).
        profiles: one row per segment: size, share and mean of every feature (original units).
        names: segment -> name; rules: segment -> the rule that produced the name.
        k: number of segments; k_scores: k, inertia, silhouette for every k tried.
        inertia: K-Means inertia on the prepared matrix.
        columns: the prepared feature columns, in matrix order.
        why_k: in words, how k was chosen.
        stability: mean pairwise ARI of the chosen k's fits with five seeds (a sample).
    """

    assignments: pl.DataFrame
    profiles: pl.DataFrame
    names: dict[int, str]
    rules: dict[int, str]
    k: int
    inertia: float
    columns: list[str]
    k_scores: pl.DataFrame = field(default_factory=pl.DataFrame)
    why_k: str = ""
    stability: float | None = None


@dataclass(frozen=True)
class SegmentConfig:
    """How to segment (validated once, here): ``k`` is "auto" (the best silhouette over
    k = 3..10) or a number of segments; ``seed`` seeds K-Means and every sample; ``space``
    is "behaviour" (default) or "behaviour+category" (adds the category-share block; see
    ``engine.segments.prepare``)."""

    k: int | Literal["auto"] = "auto"
    seed: int = 0
    space: Space = "behaviour"

    def __post_init__(self) -> None:
        if self.space not in SPACES:
            raise ConfigError.out_of_range("space", f"one of {SPACES}", self.space)
        if self.k != "auto" and (isinstance(self.k, bool) or not isinstance(self.k, int)):
            raise ConfigError.out_of_range("k", "'auto' or an integer", self.k)
        if self.k != "auto" and self.k < 1:
            raise ConfigError.out_of_range("k", "'auto' or an integer >= 1", self.k)

    @classmethod
    def parse(cls, k: str, seed: int, space: str = "behaviour") -> SegmentConfig:
        """From command-line values (k as text: "auto" or a number)."""
        chosen = cast(Space, space)  # validated by the constructor
        if k == "auto":
            return cls("auto", seed, chosen)
        try:
            return cls(int(k), seed, chosen)
        except ValueError:
            raise ConfigError.out_of_range("k", "'auto' or an integer", k) from None


def check_segmentable(n: int, k: int | Literal["auto"]) -> None:
    """The checks every backend makes before segmenting ``n`` users."""
    if n < 2:
        raise DataValidationError(f"need at least 2 users to segment, got {n}")
    if k != "auto" and (not isinstance(k, int) or k < 1 or k > n):
        raise ConfigError.out_of_range("k", f"'auto' or an integer in [1, {n}]", k)


def segment(
    features: pl.DataFrame,
    k: int | Literal["auto"] = "auto",
    seed: int = 0,
    space: Space = "behaviour",
) -> Segmentation:
    """Cluster users into segments and name them.

    Args:
        features: output of ``user_features`` (collected).
        k: number of segments, or "auto" (the best silhouette over k = 3..10).
        seed: random seed for K-Means and the silhouette sample.
        space: "behaviour" (default) or "behaviour+category" (see ``prepare``).

    Returns:
        Segmentation.
    """
    n = features.height
    check_segmentable(n, k)
    check_columns(features)  # every needed column is there (a one-line error if not)
    # K-Means sees the users in hash order (as every backend does); the labels go back
    # to the features' own order.
    order = hash_order(features)
    matrix, columns = prepare(features, order, space)
    rows = InMemoryRows(matrix, np.ones(1))
    model, fitted, scores = fit_segments(rows, k, seed)
    steady = stability(rows, model.n_clusters, seed)
    del matrix, rows
    relabel = size_order(np.bincount(fitted, minlength=model.n_clusters))
    labels = np.empty(n, dtype=np.int32)
    labels[order] = relabel[fitted]
    with_segment = features.with_columns(_like_chunks(labels, features["user_id"], "segment"))
    profiles = profile(with_segment)
    assignments = with_segment.select("user_id", "segment").sort("user_id")
    seg = named(assignments, profiles, model.inertia_, columns, scores)
    return dataclasses.replace(seg, why_k=why_k(scores, seg.k), stability=steady)


def _like_chunks(values: np.ndarray, like: pl.Series, name: str) -> pl.Series:
    """``values`` as an Int32 Series cut into the chunks of ``like``: added to a frame of
    many chunks (a features file read back), a one-chunk column would make the next select
    re-chunk every column of the frame (a copy of the whole features table)."""
    bounds = np.cumsum([0, *like.chunk_lengths()])
    pieces = [pl.Series(name, values[a:b], dtype=pl.Int32) for a, b in pairwise(bounds)]
    return pl.concat(pieces, rechunk=False) if len(pieces) > 1 else pieces[0]


def named(
    assignments: pl.DataFrame,
    profiles: pl.DataFrame,
    inertia: float,
    columns: list[str],
    scores: pl.DataFrame,
) -> Segmentation:
    """Name the profiled segments and put the names on the assignments."""
    names, rules = name_segments(profiles)
    to_name = pl.col("segment").replace_strict(names, return_dtype=pl.String)
    assignments = assignments.with_columns(to_name.alias("segment_name"))
    profiles = profiles.with_columns(
        to_name.alias("segment_name"),
        pl.col("segment").replace_strict(rules, return_dtype=pl.String).alias("name_rule"),
    )
    k = profiles.height
    return Segmentation(assignments, profiles, names, rules, k, inertia, columns, scores)


def segment_stage(features: pl.DataFrame, config: SegmentConfig, out: str | Path) -> Segmentation:
    """Segment ``features``; write the assignments to ``out`` and the profiles beside it
    (``<stem>_profiles.parquet``)."""
    seg = segment(features, k=config.k, seed=config.seed, space=config.space)
    write_segmentation(seg, out)
    return seg


def write_segmentation(
    seg: Segmentation, out: str | Path, profiles_out: str | Path | None = None
) -> None:
    """The assignments to ``out``, the profiles to ``profiles_out`` (default: beside
    ``out``, ``<stem>_profiles.parquet``)."""
    out = Path(out)
    if profiles_out is None:
        profiles_out = out.with_name(out.stem + "_profiles.parquet")
    write_parquet_atomic(seg.assignments, out)
    write_parquet_atomic(seg.profiles, profiles_out)


def profiles_from_file(features_path: str | Path, assignments: pl.DataFrame) -> pl.DataFrame:
    """The profiles of earlier segments (``assignments``: user_id, segment, segment_name),
    streamed over a features file; names as assigned, rules as the names' rules give them.

    Performance note: the features are scanned, not read: the whole table, and its join with
    the segments, would cost memory in proportion to users times features.
    """
    with_segment = pl.scan_parquet(features_path).join(
        assignments.lazy().select("user_id", "segment"), on="user_id"
    )
    profiles = merge_profiles([profile_partial(with_segment)], assignments["segment"].n_unique())
    names = dict(assignments.select("segment", "segment_name").unique().iter_rows())
    _, rules = name_segments(profiles)
    return profiles.with_columns(
        pl.col("segment").replace_strict(names, return_dtype=pl.String).alias("segment_name"),
        pl.col("segment").replace_strict(rules, return_dtype=pl.String).alias("name_rule"),
    )
