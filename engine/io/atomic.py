"""The one atomic writer: every output file and dataset folder of ecomscale goes through here.

A file is written to a hidden temporary sibling and renamed into place; a folder is built in
a hidden staging sibling and renamed into place when complete (an old one is removed only
afterwards). A reader therefore sees the old output or the new one, never half of one, and
a failed or interrupted run leaves no partial output under the target's name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from engine.exceptions import DatasetIOError


def _hidden_sibling(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.{kind}-{uuid.uuid4().hex[:8]}"


def check_writable(folder: str | Path) -> None:
    """Fail before any work when nothing can be written under ``folder``, which need not
    exist yet: its nearest existing ancestor must be a writable folder.

    Raises:
        DatasetIOError: naming the folder and the reason.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise DatasetIOError.unwritable(folder, f"{probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise DatasetIOError.unwritable(folder, f"no permission to write in {probe}")


class AtomicParquetWriter:
    """Row groups appended to a temporary file that is renamed into place on commit.

    Use as a context manager: the file appears when the block ends without an error.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _hidden_sibling(self.path, "tmp")
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        self._writer.write_table(table)

    def commit(self) -> None:
        if self._writer is not None:
            self._writer.close()
            os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_parquet_atomic(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` (zstd) through a temporary file and a rename."""
    with AtomicParquetWriter(path) as writer:
        writer.write(frame)
    return writer.path


def sink_parquet_atomic(frame: pl.LazyFrame, path: str | Path, **options: Any) -> Path:
    """Stream a lazy frame to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_sibling(path, "tmp")
    try:
        frame.sink_parquet(tmp, **options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _hidden_sibling(path, "tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a hidden staging sibling; it becomes ``target`` when the block
    ends without an error (an existing ``target`` is replaced only with ``overwrite``).

    Raises:
        DatasetIOError: ``target`` exists (without ``overwrite``), is a file, or its parent
            cannot be written.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise DatasetIOError(
            f"{target} already exists. Hint: pass --overwrite (overwrite=True) to replace it"
        )
    if target.exists() and not target.is_dir():
        raise DatasetIOError(f"{target} exists and is not a folder; remove it or choose another")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = _hidden_sibling(target, "partial")
        staging.mkdir()
    except OSError as exc:
        raise DatasetIOError.unwritable(target.parent, str(exc.strerror)) from None
    try:
        yield staging
        _publish(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _publish(staging: Path, target: Path) -> None:
    """Move a finished staging folder to ``target``; an old target is removed only afterwards."""
    old = None
    if target.exists():
        old = _hidden_sibling(target, "old")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
