"""load_dataset: our dataset layout (or, through ``engine.io.foreign``, a foreign event log)
as lazy frames in the contract's column names. Nothing is collected here except file footers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl

from engine.exceptions import ConfigError, DatasetIOError, DataValidationError
from engine.schema import (
    BUCKET_DIR,
    EVENTS_DIR,
    EVENTS_SCHEMA,
    MANIFEST,
    PERSONAS_FILE,
    PRODUCTS_FILE,
    PRODUCTS_SCHEMA,
    USER_KEYS_FILE,
    USERS_FILE,
)

Format = Literal["auto", "parquet", "csv"]
FORMATS: tuple[str, ...] = ("auto", "parquet", "csv")
REQUIRED = ("user_id", "ts", "event_type", "product_id", "price")
NO_CATEGORY = "(none)"


@dataclass(frozen=True)
class DataSource:
    """Where a dataset comes from and how to read it (what ``load_dataset`` takes).

    Attributes:
        path: a dataset folder written by ``ecomscale generate``, or a file or folder of
            foreign Parquet/CSV event files.
        format: file format of foreign data ("auto" picks by extension).
        preset: a known foreign layout, e.g. "rees46" (``engine.io.foreign.FOREIGN_PRESETS``).
        columns: contract column -> source column, for foreign names (overrides the preset).
        more_paths: further files or folders of the same log (e.g. one CSV per month).
        item_properties: RetailRocket's item_properties*.csv (prices and categories).
        category_tree: RetailRocket's category_tree.csv (categories rolled up to roots).
    """

    path: Path
    format: Format = "auto"
    preset: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    more_paths: tuple[Path, ...] = ()
    item_properties: tuple[Path, ...] = ()
    category_tree: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if self.format not in FORMATS:
            raise ConfigError.out_of_range("format", f"one of {FORMATS}", self.format)

    @classmethod
    def parse(
        cls,
        path: str | Path,
        format: str,
        preset: str | None,
        pairs: tuple[str, ...],
        item_properties: tuple[Path, ...] = (),
        category_tree: Path | None = None,
        more_paths: tuple[Path, ...] = (),
    ) -> DataSource:
        """From command-line values: ``pairs`` are CONTRACT=SOURCE column mappings."""
        columns = {}
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(
                    f"--column {pair!r}: expected CONTRACT=SOURCE, e.g. user_id=visitorid"
                )
            key, value = pair.split("=", 1)
            columns[key.strip()] = value.strip()
        return cls(  # validated there
            Path(path),
            cast(Format, format),
            preset,
            columns,
            tuple(Path(p) for p in more_paths),
            tuple(Path(p) for p in item_properties),
            None if category_tree is None else Path(category_tree),
        )

    def files(self) -> tuple[list[Path], Format]:
        """Every file of a foreign log, in path order, and their format."""
        files, fmt = list_files(self.path, self.format)
        for path in self.more_paths:
            more, more_fmt = list_files(path, fmt)
            if more_fmt != fmt:
                raise DatasetIOError(f"{path}: {more_fmt} files beside {fmt} ones; pass --format")
            files.extend(more)
        return sorted(set(files)), fmt

    @property
    def native(self) -> bool:
        """A dataset folder in our layout (else a foreign log)."""
        return (self.path / MANIFEST).exists() or (self.path / EVENTS_DIR).is_dir()

    def load(self) -> Dataset:
        """The dataset, opened lazily: a native folder as it is, a foreign log read in place
        (``engine.io.ingest`` lays it out natively once instead)."""
        if self.native:
            if self.preset or self.columns or self.item_properties or self.more_paths:
                raise DataValidationError(
                    f"{self.path}: an ecomscale dataset needs no --preset or --column mapping"
                )
            return _load_native(self.path)
        from engine.io.foreign import load_foreign

        return load_foreign(self)


@dataclass(frozen=True)
class Dataset:
    """Lazy frames of one dataset. ``events`` holds raw (not yet validated) rows.

    Attributes:
        events: user_id, ts, event_type (String or Enum), product_id, price, ``_file``.
        products: product_id, category, brand, base_price (None if the source has none).
        users: the users table when the source has one.
        truth: planted personas (synthetic data only).
        source: the path given to load_dataset.
        declared_sorted: the layout promises (user_id, ts) order across files (our layout).
        manifest: the manifest of a generated dataset.
        user_keys: user_id -> the source's own id (``key``), when ids were remapped.
        buckets: in the bucketed layout, the event files of every bucket (index = bucket;
            empty for a bucket without users); ``events`` is then sorted within each bucket
            only, and per-user work goes bucket by bucket (see ``bucket_events``).
    """

    events: pl.LazyFrame
    products: pl.LazyFrame | None
    users: pl.LazyFrame | None
    truth: pl.LazyFrame | None
    source: Path
    declared_sorted: bool
    manifest: dict[str, Any] | None = None
    user_keys: pl.LazyFrame | None = None
    buckets: tuple[tuple[Path, ...], ...] = ()


SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".csv.gz": "csv"}


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), None)


def list_files(path: Path, fmt: Format) -> tuple[list[Path], Format]:
    """The event files at ``path`` (a file, or every .parquet/.csv/.csv.gz file under a
    folder, in name order) and their format."""
    if not path.exists():
        raise DatasetIOError(f"{path}: no such file or folder. Hint: check the path")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p) is not None)
    if not files:
        raise DatasetIOError(f"{path}: no .parquet, .csv or .csv.gz files found")
    if fmt == "auto":
        kinds = {_kind(p) for p in files}
        if len(kinds) > 1:
            raise DatasetIOError(f"{path}: mixes CSV and Parquet files; pass --format")
        fmt = "csv" if kinds == {"csv"} else "parquet"
    return files, fmt


def scan_files(files: list[Path], fmt: Format) -> pl.LazyFrame:
    frames = []
    for file in files:
        try:
            if fmt == "csv":
                lf = pl.scan_csv(file, include_file_paths="_file", infer_schema_length=10_000)
            else:
                lf = pl.scan_parquet(file, include_file_paths="_file")
            lf.collect_schema()  # reads the footer/header now: corrupt files fail here
        except pl.exceptions.NoDataError:
            raise DataValidationError(
                f"{file}: empty file (not even a header row). Hint: remove it or re-export it"
            ) from None
        except (pl.exceptions.ComputeError, OSError) as exc:
            reason = str(exc).splitlines()[0][:200]
            raise DatasetIOError(
                f"{file}: cannot read as {fmt} ({reason}). Hint: is the file complete?"
            ) from None
        if fmt == "csv" and lf.head(1).collect().height == 0:
            # (a header alone reads as all-String columns: a misleading type error later)
            raise DataValidationError(f"{file}: a header but no rows. Hint: remove the file")
        frames.append(lf)
    if len(frames) == 1:
        return frames[0]
    try:
        return pl.concat(frames, how="vertical")
    except pl.exceptions.SchemaError as exc:
        raise DataValidationError(f"files under one folder disagree on schema: {exc}") from None


def require_columns(lf: pl.LazyFrame, columns: Mapping[str, str], where: str) -> None:
    names = lf.collect_schema().names()
    for contract_name, source_name in columns.items():
        if source_name not in names:
            raise DataValidationError(
                f"{where}: missing column {source_name!r} (for {contract_name}). "
                f"Found {', '.join(n for n in names if n != '_file')}. "
                f"Hint: map it with --column {contract_name}=NAME"
            )


def load_dataset(
    path: str | Path,
    *,
    format: Format = "auto",
    preset: str | None = None,
    columns: Mapping[str, str] | None = None,
) -> Dataset:
    """Open a dataset lazily.

    Args:
        path: a dataset folder written by ``ecomscale generate``, or a file or folder of
            foreign Parquet/CSV event files.
        format: file format of foreign data ("auto" picks by extension).
        preset: a known foreign layout, e.g. "rees46".
        columns: contract column -> source column, for foreign names (overrides the preset).

    Returns:
        A Dataset whose ``events`` still need ``engine.validate_events``.
    """
    return DataSource(Path(path), format, preset, columns or {}).load()


def bucket_events(files: tuple[Path, ...]) -> pl.LazyFrame:
    """The raw events of one bucket of the bucketed layout (sorted by (user_id, ts))."""
    return scan_files(list(files), "parquet").select(*REQUIRED, "_file")


def _bucket_files(events_dir: Path, files: list[Path]) -> tuple[tuple[Path, ...], ...]:
    """Files per bucket when ``events_dir`` holds bucket=NNNNN folders, else ()."""
    folders = {f.parent for f in files}
    if folders == {events_dir}:
        return ()
    known: dict[Path, int] = {}
    for folder in sorted(folders):
        match = re.fullmatch(r"bucket=(\d{5})", folder.name)
        if match is None or folder.parent != events_dir:
            raise DatasetIOError(
                f"{events_dir}: unexpected folder {folder}; expected part-*.parquet files or "
                f"{BUCKET_DIR.format(0)}/ style bucket folders"
            )
        known[folder] = int(match.group(1))
    buckets: list[list[Path]] = [[] for _ in range(max(known.values()) + 1)]
    for file in files:
        buckets[known[file.parent]].append(file)
    return tuple(tuple(sorted(b)) for b in buckets)


def _load_native(path: Path) -> Dataset:
    events_dir = path / EVENTS_DIR
    files, _ = list_files(events_dir, "parquet")
    buckets = _bucket_files(events_dir, files)
    events = scan_files(files, "parquet")
    where = str(events_dir)
    require_columns(events, {c: c for c in REQUIRED}, where)
    schema = events.collect_schema()
    for name, dtype in EVENTS_SCHEMA.items():
        if name == "event_type":
            if schema[name] not in (pl.String, pl.Categorical) and schema[name] != dtype:
                raise DataValidationError(
                    f"{where}: column 'event_type' has type {schema[name]}; expected {dtype}"
                )
        elif schema[name] != dtype:
            raise DataValidationError(
                f"{where}: column {name!r} has type {schema[name]}; expected {dtype}. "
                "Hint: regenerate the dataset or load it as foreign data"
            )
    manifest = None
    if (path / MANIFEST).exists():
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetIOError(f"{path / MANIFEST}: unreadable manifest ({exc})") from None
    if manifest is not None and buckets:
        declared = int(manifest.get("layout", {}).get("buckets", 0))
        if declared < len(buckets):
            raise DatasetIOError(
                f"{path / MANIFEST}: layout says {declared} buckets but {events_dir} has "
                f"{len(buckets)}. Hint: regenerate or repartition the dataset"
            )
        buckets = buckets + ((),) * (declared - len(buckets))
    events = events.select(*REQUIRED, "_file")

    def optional(name: str) -> pl.LazyFrame | None:
        file = path / name
        return scan_files([file], "parquet").drop("_file") if file.exists() else None

    products = optional(PRODUCTS_FILE)
    if products is not None:
        require_columns(products, {c: c for c in PRODUCTS_SCHEMA}, str(path / PRODUCTS_FILE))
    return Dataset(
        events=events,
        products=products,
        users=optional(USERS_FILE),
        truth=optional(PERSONAS_FILE),
        source=path,
        user_keys=optional(USER_KEYS_FILE),
        declared_sorted=not buckets,
        manifest=manifest,
        buckets=buckets,
    )


def require_file_columns(path: Path, needed: tuple[str, ...], hint: str) -> None:
    """A one-line error when the Parquet file at ``path`` lacks any of ``needed``."""
    present = set(pl.scan_parquet(path).collect_schema().names())
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataValidationError.missing_columns(path, missing, hint)
