"""What every insight shares: the segment of each event's user, and shared names."""

from __future__ import annotations

import polars as pl

from engine.features.lookup import dense_lookup

ALL = "all users"
NO_CATEGORY = "(none)"


def with_segment(frame: pl.LazyFrame, segments: pl.DataFrame | pl.LazyFrame | None) -> pl.LazyFrame:
    """Add ``segment_name`` to rows with a user_id; rows of users without a segment are
    dropped (None: every row is in ALL).

    ``segments`` is user_id, segment_name (one row per user). Collected at the edge (a
    DataFrame) with dense ids, it is looked up by id (``dense_lookup``) and the name is an
    Enum (grouped as integers; the tables cast it back to String); otherwise it is joined.
    """
    if segments is None:
        return frame.with_columns(pl.lit(ALL).alias("segment_name"))
    if isinstance(segments, pl.LazyFrame):
        return frame.join(segments.select("user_id", "segment_name"), on="user_id", how="inner")
    table = segments.select("user_id", "segment_name")
    names = table["segment_name"].cast(pl.Enum(table["segment_name"].unique().sort()))
    lookup = dense_lookup(table["user_id"], names, pl.col("user_id"))
    if lookup is None:
        return frame.join(table.lazy(), on="user_id", how="inner")
    return frame.with_columns(lookup.alias("segment_name")).drop_nulls("segment_name")
