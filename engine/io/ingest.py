"""Ingest: any foreign event log, read once, laid out as a native dataset.

One streaming read of the source scatters its rows into the buckets of the bucketed layout
(engine.schema's stable user hash), on disk. Each bucket is then sorted by (user_id, ts,
then every other column, so that the source's row order never matters), validated with the
usual rules and policies, and written. Memory follows one bucket, not the input; every
stage, serial or on Dask, reads the result natively.

Ids: integer keys that fit in u32 stay as they are (a REES46 user_id is the same number
after ingest). Other keys (strings, negative or larger numbers) get u32 ids: a user's id is
chosen inside its bucket's hash range (``ids_of_bucket``), in the order of the source's
keys; products are numbered 0.. in key order. keys/users.parquet and keys/products.parquet
map them back. The manifest records the source files' sizes and hashes, so that an
unchanged source is not ingested twice (``ingested``).
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from engine.exceptions import ConfigError, DatasetIOError
from engine.io.atomic import atomic_dir
from engine.io.dataset import DataSource
from engine.io.foreign import (
    dense_keys,
    normalized_events,
    product_stats,
    products_table,
    with_dense_id,
)
from engine.io.ingest_buckets import QUARANTINE_DIR, SORT_KEY, write_buckets
from engine.schema import (
    MANIFEST,
    MAX_BUCKETS,
    PRODUCT_KEYS_FILE,
    PRODUCTS_FILE,
    SCHEMA_VERSION,
    USER_KEYS_FILE,
    user_bucket,
)
from engine.validation import Policy, parse_policy

GENERATOR = "ecomscale.ingest"
INGEST_VERSION = 2  # bump when the same source would ingest differently
PART_ROWS = 2_000_000  # rows per bucket: what one bucket's sort holds in memory
CSV_BYTES_PER_ROW = 100  # for the row estimate before reading (REES46: ~110)

Progress = Callable[[str, int, int], None]  # phase, done, total


@dataclass(frozen=True)
class IngestConfig:
    """How to ingest (validated once, here).

    Attributes:
        on_bad_rows: validation policy ("error", "drop" or "quarantine"); rejected rows go
            to ``DATA/quarantine/`` beside the events they were cut from.
        buckets: number of buckets; None: one per ``PART_ROWS`` rows of the estimated input
            (give a few per Dask worker for a cluster).
        overwrite: replace an existing folder at the target.
    """

    on_bad_rows: Policy = "error"
    buckets: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        parse_policy(self.on_bad_rows)
        if self.buckets is not None and not 1 <= self.buckets <= MAX_BUCKETS:
            raise ConfigError.out_of_range("buckets", f"in [1, {MAX_BUCKETS}]", self.buckets)


@dataclass(frozen=True)
class IngestResult:
    """What ``ingest`` wrote (or found already written, when ``reused``)."""

    path: Path
    manifest: dict[str, Any]
    reused: bool
    seconds: float

    @property
    def counts(self) -> dict[str, Any]:
        return dict(self.manifest["counts"])


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _all_files(source: DataSource) -> list[Path]:
    """Every file the source reads: the log's, then RetailRocket's item files."""
    files, _ = source.files()
    tree = [source.category_tree] if source.category_tree else []
    return [*files, *source.item_properties, *tree]


def fingerprint(source: DataSource, config: IngestConfig) -> dict[str, Any]:
    """What decides the ingested dataset: every source file's size and hash, the mapping
    and the validation policy (compared with the manifest to reuse an ingest)."""
    _, fmt = source.files()
    return {
        "path": str(source.path.resolve()),
        "format": fmt,
        "preset": source.preset,
        "columns": dict(sorted(source.columns.items())),
        "files": [
            {"path": str(f.resolve()), "bytes": f.stat().st_size, "sha256": _digest(f)}
            for f in _all_files(source)
        ],
        "on_bad_rows": config.on_bad_rows,
        "buckets": config.buckets,
        "ingest_version": INGEST_VERSION,
    }


def _bucket_count(source: DataSource, config: IngestConfig) -> int:
    if config.buckets is not None:
        return config.buckets
    files, fmt = source.files()
    if fmt == "parquet":
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    else:
        gzip_ratio = lambda f: 6 if f.name.lower().endswith(".gz") else 1  # noqa: E731
        rows = sum(f.stat().st_size * gzip_ratio(f) for f in files) // CSV_BYTES_PER_ROW
    return min(MAX_BUCKETS, max(1, math.ceil(rows / PART_ROWS)))


def ingested(
    source: DataSource, out: Path, config: IngestConfig, on_progress: Progress | None = None
) -> IngestResult:
    """The dataset of ``source`` in the bucketed layout at ``out``: the one already there
    when its manifest says it came from the same files (sizes and hashes) the same way, else
    a new ingest of a foreign log, or a partition of a native dataset (replacing an earlier
    one at ``out``, nothing else)."""
    start = time.perf_counter()
    manifest = _read_manifest(out)
    wanted = None  # hashed while ingesting, unless the sizes say it may be the same source
    if manifest is not None and _same_sizes(manifest, source):
        wanted = fingerprint(source, config)
        if manifest.get("source") == wanted:
            return IngestResult(out, manifest, True, time.perf_counter() - start)
    if out.exists() and manifest is None:
        raise DatasetIOError(
            f"{out}: exists and is not an ecomscale dataset; ingest will not replace it. "
            "Hint: move it, or pass another --out"
        )
    replace = IngestConfig(config.on_bad_rows, config.buckets, overwrite=True)
    if source.native:  # a native dataset by user range, laid out in buckets for a cluster
        from engine.io.partition import PartitionConfig, partition_stage

        buckets = _bucket_count(source, config)
        layout = PartitionConfig(buckets, config.on_bad_rows, out.parent / QUARANTINE_DIR, True)
        record = wanted or fingerprint(source, config)
        manifest, _ = partition_stage(source.load(), out, layout, record)
        return IngestResult(out, manifest, False, time.perf_counter() - start)
    return ingest(source, out, replace, on_progress, wanted)


def _same_sizes(manifest: dict[str, Any], source: DataSource) -> bool:
    """Whether the manifest's source files are the source's files, at the same sizes (the
    cheap half of the reuse check)."""
    now = [(str(f.resolve()), f.stat().st_size) for f in _all_files(source)]
    recorded = manifest.get("source", {})
    if not isinstance(recorded, dict):
        return False
    return now == [(f.get("path"), f.get("bytes")) for f in recorded.get("files", [])]


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def ingest(
    source: DataSource,
    out: str | Path,
    config: IngestConfig = IngestConfig(),
    on_progress: Progress | None = None,
    source_fingerprint: dict[str, Any] | None = None,
) -> IngestResult:
    """Lay ``source`` (a foreign log: a file, several, or a folder) out at ``out`` as a
    native dataset in the bucketed layout, atomically: events/bucket=NNNNN/part-00000.parquet,
    products.parquet, keys/*.parquet where ids were given, quarantine/ when rows were set
    aside, and manifest.json (source files, counts, validation).

    Raises:
        DataValidationError: on a source that cannot be read as asked, or on broken rules
            under "error" (one line naming the file, the column and a fix).
    """
    start = time.perf_counter()
    target = Path(out)
    if source.native:
        raise ConfigError(f"{source.path}: already an ecomscale dataset; nothing to ingest")
    hashing = None
    if source_fingerprint is None:  # hashlib releases the GIL: hash while Polars reads
        pool = ThreadPoolExecutor(1)
        hashing = pool.submit(fingerprint, source, config)
        pool.shutdown(wait=False)
    events, preset = normalized_events(source)
    n_buckets = _bucket_count(source, config)
    report = lambda phase, done, total: on_progress and on_progress(phase, done, total)  # noqa: E731
    with atomic_dir(target, overwrite=config.overwrite) as root:
        with tempfile.TemporaryDirectory(prefix=".scratch-", dir=root) as scratch_dir:
            report("read", 0, 1)
            scattered = _scatter(events, Path(scratch_dir), n_buckets)
            report("read", 1, 1)
            products = None
            if _needs_ids(_bounds(scattered.stats, "product_id")):
                keys = dense_keys(scattered.stats.select("product_id"), "product_id")
                products = keys.collect()
                _write_keys(products, root / PRODUCT_KEYS_FILE)
            written = write_buckets(
                scattered.buckets, root, n_buckets, _needs_ids(scattered.bounds),
                products, config.on_bad_rows, preset.drop_exact_duplicates, report,
            )  # fmt: skip
            catalogue = _catalogue(
                scattered.stats, written.prices, products, preset.category_levels
            )
        catalogue.drop("_conflict_category", "_conflict_brand").write_parquet(root / PRODUCTS_FILE)
        validation, duplicates = written.report, written.duplicates
        if written.user_keys is not None:
            _write_keys(written.user_keys, root / USER_KEYS_FILE)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "generator": GENERATOR,
            "source": source_fingerprint if hashing is None else hashing.result(),
            "layout": {"buckets": n_buckets},
            "counts": {
                "events": validation.rows_out,
                "events_in": validation.rows_in + duplicates,
                "exact_duplicates": duplicates,
                "products": catalogue.height,
                "product_conflicts": {
                    "category": int(catalogue["_conflict_category"].sum()),
                    "brand": int(catalogue["_conflict_brand"].sum()),
                },
            },
            "validation": validation.counts,
            "quarantine": None
            if validation.quarantine_path is None
            else str(target / QUARANTINE_DIR),
        }
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return IngestResult(target, manifest, False, time.perf_counter() - start)


@dataclass(frozen=True)
class Scattered:
    """What the one read of the source leaves in scratch: the rows of every bucket
    (bucket -> folder; rows without a user key under bucket ``n_buckets``), the
    ``product_stats`` of the products, and the user keys' bounds."""

    buckets: dict[int, Path]
    stats: pl.LazyFrame
    bounds: pl.LazyFrame


def _scatter(events: pl.LazyFrame, scratch: Path, n_buckets: int) -> Scattered:
    """One streaming read of the source: each user's rows into the folder of its bucket
    (the stable user hash of an integer key, which stays its id; a hash of any other key,
    whose id is then chosen inside that bucket), and the product tables beside them."""
    key = pl.col("user_id")
    if events.collect_schema()["user_id"].is_integer():
        bucket = user_bucket(key.cast(pl.Int64) % (1 << 32), n_buckets)
    else:
        bucket = (key.hash(seed=0) % n_buckets).cast(pl.UInt32)
    rows = events.select(*SORT_KEY, bucket.fill_null(n_buckets).alias("_bucket"))
    sinks = [
        rows.with_columns(pl.col("_file").cast(pl.Categorical)).sink_parquet(
            pl.PartitionBy(scratch / "rows", key="_bucket", include_key=False),
            mkdir=True,
            compression="lz4",
            lazy=True,
        ),
        product_stats(events).sink_parquet(scratch / "stats.parquet", lazy=True),
        _bounds(events, "user_id").sink_parquet(scratch / "bounds.parquet", lazy=True),
    ]
    pl.collect_all(sinks, engine="streaming")  # the scan is shared: the source is read once
    folders = {int(p.name.partition("=")[2]): p for p in (scratch / "rows").iterdir()}
    return Scattered(
        dict(sorted(folders.items())),
        pl.scan_parquet(scratch / "stats.parquet"),
        pl.scan_parquet(scratch / "bounds.parquet"),
    )


def _bounds(frame: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """The smallest and largest key of column ``name`` (``low``, ``high``)."""
    return frame.select(pl.col(name).min().alias("low"), pl.col(name).max().alias("high"))


def _needs_ids(bounds: pl.LazyFrame) -> bool:
    """Whether keys with these ``_bounds`` need ids: strings, or numbers outside u32."""
    if not bounds.collect_schema()["low"].is_integer():
        return True
    low, high = bounds.collect().row(0)
    return low is not None and (low < 0 or high >= 1 << 32)


def _write_keys(table: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(path)


def _catalogue(
    stats: pl.LazyFrame,
    prices: pl.LazyFrame,
    products: pl.DataFrame | None,
    category_levels: bool,
) -> pl.DataFrame:
    """The products table (``products_table``) in product ids; ``prices`` are already."""
    if products is None:
        stats = stats.with_columns(pl.col("product_id").cast(pl.UInt32))
    else:
        stats = with_dense_id(stats, products, "product_id", keep_order=False)
    return products_table(stats, prices, category_levels=category_levels).collect()
