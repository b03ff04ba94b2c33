"""Segments from per-user features: the behavioural space, k, K-Means, profiles and names."""

from engine.segments.naming import name_segments
from engine.segments.prepare import NEEDED_COLUMNS, prepare
from engine.segments.stage import (
    Segmentation,
    SegmentConfig,
    profiles_from_file,
    segment,
    segment_stage,
    write_segmentation,
)

__all__ = [
    "NEEDED_COLUMNS",
    "SegmentConfig",
    "Segmentation",
    "name_segments",
    "prepare",
    "profiles_from_file",
    "segment",
    "segment_stage",
    "write_segmentation",
]
