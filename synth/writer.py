"""Persist generated chunks: one events part per user range (or, in the bucketed layout, one
file per part and bucket), exact-size row groups, atomically.

Row groups are cut every ``row_group_rows`` rows of a part, never at chunk boundaries, so
the bytes do not depend on how the part was chunked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.schema import BUCKET_DIR, user_bucket_np

# Dictionary pages only where they pay (few distinct values); prices and timestamps are
# nearly all distinct, and trying a dictionary for them costs more than it saves.
PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 1,
    "write_statistics": True,
    "use_dictionary": [
        "event_type",
        "product_id",
        "category",
        "brand",
        "country",
        "device",
        "channel",
        "persona",
    ],
}


class RowGroupWriter:
    """Writes tables to one Parquet file in row groups of exactly ``rows`` rows (last shorter).

    Each full row group is encoded and written by a background thread (Arrow releases the
    GIL) while the caller generates the next one; at most one group is in flight, so memory
    stays at two row groups. Groups are written in order, so the bytes do not change.
    """

    def __init__(self, path: Path, schema: pa.Schema, rows: int) -> None:
        self._writer = pq.ParquetWriter(path, schema, **PARQUET_OPTIONS)
        self.paths = [path]
        self._rows = rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="parquet-writer")
        self._inflight: Future[None] | None = None

    def _write_group(self, table: pa.Table) -> None:
        if self._inflight is not None:
            self._inflight.result()  # one group in flight; re-raises a failed write
        self._inflight = self._pool.submit(
            self._writer.write_table, table, row_group_size=self._rows
        )

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self._rows:
            merged = pa.concat_tables(self._pending)
            self._write_group(merged.slice(0, self._rows))
            rest = merged.slice(self._rows)
            self._pending, self._pending_rows = [rest], rest.num_rows

    def close(self) -> None:
        try:
            if self._pending_rows:
                self._write_group(pa.concat_tables(self._pending))
            if self._inflight is not None:
                self._inflight.result()
        finally:
            self._pool.shutdown(wait=True)
            self._writer.close()


class BucketedWriter:
    """Routes the rows of one part to events/bucket=NNNNN/<name>, by the stable user hash.

    Rows keep their order within a bucket, so each bucket file stays sorted by (user_id, ts)
    when the part is; buckets that receive no rows get no file.
    """

    def __init__(self, events_dir: Path, name: str, schema: pa.Schema, rows: int, n: int) -> None:
        self._events_dir, self._name, self._schema = events_dir, name, schema
        self._rows, self._n = rows, n
        self._writers: dict[int, RowGroupWriter] = {}

    def write(self, table: pa.Table) -> None:
        buckets = user_bucket_np(table.column("user_id").to_numpy(), self._n)
        order = np.argsort(buckets, kind="stable")
        present, starts = np.unique(buckets[order], return_index=True)
        bounds = [*starts.tolist(), order.size]
        for i, bucket in enumerate(present.tolist()):
            rows = table.take(order[bounds[i] : bounds[i + 1]])
            if bucket not in self._writers:
                folder = self._events_dir / BUCKET_DIR.format(bucket)
                folder.mkdir(exist_ok=True)
                self._writers[bucket] = RowGroupWriter(
                    folder / self._name, self._schema, self._rows
                )
            self._writers[bucket].write(rows)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()

    @property
    def paths(self) -> list[Path]:
        return [path for writer in self._writers.values() for path in writer.paths]


def write_table(table: pa.Table, path: Path, rows: int) -> None:
    """Write a whole table to ``path`` with the project's Parquet options."""
    writer = RowGroupWriter(path, table.schema, rows)
    writer.write(table)
    writer.close()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def iter_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order (for hashes)."""
    yield from sorted(p for p in root.rglob("*") if p.is_file())
