"""The second half of ingest: each bucket of scattered rows given its ids, sorted by every
column, cleared of exact duplicates, validated and written (``write_buckets``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.io.dataset import REQUIRED
from engine.io.foreign import median_of_counts, price_counts, with_dense_id
from engine.io.outofcore import bucket_quarantine
from engine.schema import BUCKET_DIR, EVENT_TYPES, EVENTS_DIR, ids_of_bucket
from engine.validation import Policy, ValidationReport, merge_reports, validate_events

SORT_KEY = (*REQUIRED, "_file")  # the columns of a scattered row
QUARANTINE_DIR = "quarantine"


@dataclass(frozen=True)
class BucketsWritten:
    """What writing the buckets found: the merged validation report, the exact duplicates
    dropped, the user key map (None when keys stayed ids) and the base prices of the kept
    events (``median_of_counts`` of every bucket's ``price_counts``)."""

    report: ValidationReport
    duplicates: int
    user_keys: pl.DataFrame | None
    prices: pl.LazyFrame


def write_buckets(
    folders: dict[int, Path],
    root: Path,
    n_buckets: int,
    remap_users: bool,
    products: pl.DataFrame | None,
    on_bad_rows: Policy,
    drop_exact_duplicates: bool,
    report: Callable[[str, int, int], None],
) -> BucketsWritten:
    """Each bucket in turn: ids, sort, exact duplicates (when the preset says so),
    validation, write."""
    quarantine = root / QUARANTINE_DIR
    reports, duplicates, user_keys, counts = [], 0, [], []
    for done, (bucket, folder) in enumerate(folders.items()):
        report("sort", done, len(folders))
        rows = pl.read_parquet(folder / "**" / "*.parquet")
        if remap_users and bucket < n_buckets:
            keys = rows.select(pl.col("user_id").alias("key")).drop_nulls().unique().sort("key")
            keys = keys.with_columns(
                pl.Series("user_id", ids_of_bucket(bucket, n_buckets, keys.height))
            )
            user_keys.append(keys.select("user_id", "key"))
            rows = with_dense_id(rows.lazy(), keys, "user_id", keep_order=False).collect()
        elif remap_users:  # rows without a user key
            rows = rows.with_columns(pl.lit(None, pl.UInt32).alias("user_id"))
        else:
            rows = rows.with_columns(pl.col("user_id").cast(pl.UInt32))
        if products is None:
            rows = rows.with_columns(pl.col("product_id").cast(pl.UInt32))
        else:
            rows = with_dense_id(rows.lazy(), products, "product_id", keep_order=False).collect()
        rows = rows.select(SORT_KEY).sort(_sort_key())  # nulls first: nulls_last sorts slower
        if drop_exact_duplicates:  # sorted: a repeat follows its original
            repeat = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift(1)) for c in REQUIRED)
            before = rows.height
            rows = rows.filter(~repeat.fill_null(False))
            duplicates += before - rows.height
        clean, bucket_report = validate_events(
            rows.lazy(),
            on_bad_rows=on_bad_rows,
            quarantine_dir=bucket_quarantine(quarantine, bucket),
            declared_sorted=True,
        )
        reports.append(bucket_report)
        if bucket < n_buckets:
            folder_out = root / EVENTS_DIR / BUCKET_DIR.format(bucket)
            folder_out.mkdir(parents=True)
            kept = clean.select(REQUIRED).collect()
            kept.write_parquet(
                folder_out / "part-00000.parquet", compression="zstd", row_group_size=250_000
            )
            counts.append(price_counts(kept.lazy()).collect())
    report("sort", len(folders), len(folders))
    return BucketsWritten(
        merge_reports(reports, on_bad_rows, quarantine, resorted=True),
        duplicates,
        pl.concat(user_keys) if user_keys else None,
        median_of_counts(pl.concat(counts).lazy() if counts else _NO_PRICES.lazy()),
    )


_NO_PRICES = pl.DataFrame(schema={"product_id": pl.UInt32, "price": pl.Float32, "_n": pl.Int64})


def _sort_key() -> list[pl.Expr]:
    """(user_id, ts, event type, product_id, price, then the event type's text): every
    contract column, so that the source's row order never changes an event's place; rows
    equal in all of them are the same event (only the file they came from, in a quarantine
    file, may follow the input order). The event type as its contract code first, because
    numbers sort far more cheaply than strings."""
    code = pl.col("event_type").replace_strict(
        {name: i for i, name in enumerate(EVENT_TYPES)}, default=len(EVENT_TYPES),
        return_dtype=pl.UInt8,
    )  # fmt: skip
    return [pl.col("user_id"), pl.col("ts"), code, *(pl.col(c) for c in REQUIRED[3:]),
            pl.col("event_type")]  # fmt: skip
