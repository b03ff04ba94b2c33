"""Agreement of segments with planted personas (synthetic data only)."""

from __future__ import annotations

import polars as pl
from sklearn.metrics import adjusted_rand_score


def persona_agreement(segments: pl.DataFrame, truth: pl.DataFrame) -> tuple[float, pl.DataFrame]:
    """Adjusted Rand index between segments and planted personas, and the contingency table."""
    joined = segments.join(truth, on="user_id", how="inner")
    # Integer codes: scikit-learn would sort the persona strings as Python objects (slow
    # at millions of users).
    personas = joined["persona"].rank("dense").to_numpy()
    ari = float(adjusted_rand_score(personas, joined["segment"].to_numpy()))
    table = (
        joined.group_by("segment", "segment_name", "persona")
        .len()
        .pivot(on="persona", index=["segment", "segment_name"], values="len", sort_columns=True)
        .fill_null(0)
        .sort("segment")
    )
    return ari, table
