"""Sessions: a user's first event starts one, and so does every gap longer than the timeout."""

from __future__ import annotations

import datetime as dt

import polars as pl

DEFAULT_SESSION_GAP = dt.timedelta(minutes=30)


def sessionize(events: pl.LazyFrame, session_gap: dt.timedelta) -> pl.LazyFrame:
    """Add ``new_session`` (first event of a session) and ``last_in_session`` flags.

    Whole-frame ``shift`` over sorted events, not ``diff`` inside a group-by: the streaming
    engine runs it natively. Assumes events sorted by (user_id, ts).
    """
    user_changed = (pl.col("user_id") != pl.col("user_id").shift(1)).fill_null(True)
    gap_exceeded = ((pl.col("ts") - pl.col("ts").shift(1)) > session_gap).fill_null(True)
    return events.with_columns((user_changed | gap_exceeded).alias("new_session")).with_columns(
        pl.col("new_session").shift(-1).fill_null(True).alias("last_in_session")
    )
