"""load_dataset: our dataset layout or foreign event logs (Parquet/CSV, a column mapping,
the REES46 preset) as lazy frames in the contract's column names. Nothing is collected here
except file footers and, for string ids, nothing at all (ids map lazily through a join).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from engine.exceptions import DatasetIOError, DataValidationError
from engine.schema import (
    BUCKET_DIR,
    EVENTS_DIR,
    EVENTS_SCHEMA,
    MANIFEST,
    PERSONAS_FILE,
    PRODUCTS_FILE,
    PRODUCTS_SCHEMA,
    TS,
    USERS_FILE,
)

Format = Literal["auto", "parquet", "csv"]
REQUIRED = ("user_id", "ts", "event_type", "product_id", "price")
NO_CATEGORY = "(none)"


@dataclass(frozen=True)
class Preset:
    """How a known foreign layout maps onto the contract."""

    columns: Mapping[str, str]  # contract name -> source name
    event_types: Mapping[str, str] = field(default_factory=dict)  # source value -> contract
    ts_format: str | None = None
    product_columns: Mapping[str, str] = field(default_factory=dict)  # category/brand on events


PRESETS: dict[str, Preset] = {
    "rees46": Preset(
        columns={
            "user_id": "user_id",
            "ts": "event_time",
            "event_type": "event_type",
            "product_id": "product_id",
            "price": "price",
        },
        event_types={"cart": "add_to_cart"},
        ts_format="%Y-%m-%d %H:%M:%S UTC",
        product_columns={"category": "category_code", "brand": "brand"},
    )
}


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
        user_keys: user_id -> original string id, when ids were strings.
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


def _files(path: Path, fmt: Format) -> tuple[list[Path], Format]:
    if not path.exists():
        raise DatasetIOError(f"{path}: no such file or folder. Hint: check the path")
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.suffix in (".parquet", ".csv"))
    if not files:
        raise DatasetIOError(f"{path}: no .parquet or .csv files found")
    if fmt == "auto":
        suffixes = {p.suffix for p in files}
        if len(suffixes) > 1:
            raise DatasetIOError(f"{path}: mixes .csv and .parquet files; pass --format")
        fmt = "csv" if suffixes == {".csv"} else "parquet"
    return files, fmt


def _scan(files: list[Path], fmt: Format) -> pl.LazyFrame:
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


def _require_columns(lf: pl.LazyFrame, columns: Mapping[str, str], where: str) -> None:
    names = lf.collect_schema().names()
    for contract_name, source_name in columns.items():
        if source_name not in names:
            raise DataValidationError(
                f"{where}: missing column {source_name!r} (for {contract_name}). "
                f"Found {', '.join(n for n in names if n != '_file')}. "
                f"Hint: map it with --column {contract_name}=NAME"
            )


def _cast_id(lf: pl.LazyFrame, name: str, where: str) -> tuple[pl.LazyFrame, pl.LazyFrame | None]:
    """Integer ids become UInt32 (range-checked later); string ids map to dense UInt32."""
    dtype = lf.collect_schema()[name]
    if dtype.is_integer():
        return lf.with_columns(pl.col(name).cast(pl.UInt32, strict=False).alias(name)), None
    if dtype in (pl.String, pl.Categorical):
        keys = (
            lf.select(pl.col(name).cast(pl.String).alias("key"))
            .drop_nulls()
            .unique()
            .sort("key")
            .with_row_index(name)
        )
        mapped = lf.with_columns(pl.col(name).cast(pl.String)).join(
            keys.rename({"key": f"_{name}_key"}),
            left_on=name,
            right_on=f"_{name}_key",
            how="left",
            maintain_order="left",
            suffix="_mapped",
        )
        mapped = mapped.with_columns(pl.col(f"{name}_mapped").cast(pl.UInt32).alias(name)).drop(
            f"{name}_mapped"
        )
        return mapped, keys.select(pl.col(name).cast(pl.UInt32), pl.col("key"))
    raise DataValidationError(
        f"{where}: column {name!r} has type {dtype}; expected integer or string ids"
    )


def _cast_ts(lf: pl.LazyFrame, ts_format: str | None, where: str) -> pl.LazyFrame:
    dtype = lf.collect_schema()["ts"]
    if dtype == pl.String:
        ts = pl.col("ts").str.to_datetime(ts_format, time_unit="us", time_zone="UTC", strict=False)
        return lf.with_columns(ts)
    if isinstance(dtype, pl.Datetime):
        ts = pl.col("ts")
        if dtype.time_zone is None:
            ts = ts.dt.replace_time_zone("UTC")
        return lf.with_columns(ts.cast(TS))
    raise DataValidationError(
        f"{where}: column 'ts' has type {dtype}; expected a datetime or an ISO-8601 string"
    )


def _check_numeric(lf: pl.LazyFrame, name: str, where: str) -> None:
    dtype = lf.collect_schema()[name]
    if not dtype.is_numeric():
        raise DataValidationError(f"{where}: column {name!r} has type {dtype}; expected numbers")


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
    path = Path(path)
    if (path / MANIFEST).exists() or (path / EVENTS_DIR).is_dir():
        if preset or columns:
            raise DataValidationError(
                f"{path}: an ecomscale dataset needs no --preset or --column mapping"
            )
        return _load_native(path)
    return _load_foreign(path, format, preset, columns or {})


def bucket_events(files: tuple[Path, ...]) -> pl.LazyFrame:
    """The raw events of one bucket of the bucketed layout (sorted by (user_id, ts))."""
    return _scan(list(files), "parquet").select(*REQUIRED, "_file")


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
    files, _ = _files(events_dir, "parquet")
    buckets = _bucket_files(events_dir, files)
    events = _scan(files, "parquet")
    where = str(events_dir)
    _require_columns(events, {c: c for c in REQUIRED}, where)
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
        return _scan([file], "parquet").drop("_file") if file.exists() else None

    products = optional(PRODUCTS_FILE)
    if products is not None:
        _require_columns(products, {c: c for c in PRODUCTS_SCHEMA}, str(path / PRODUCTS_FILE))
    return Dataset(
        events=events,
        products=products,
        users=optional(USERS_FILE),
        truth=optional(PERSONAS_FILE),
        source=path,
        declared_sorted=not buckets,
        manifest=manifest,
        buckets=buckets,
    )


def _load_foreign(
    path: Path, fmt: Format, preset_name: str | None, mapping: Mapping[str, str]
) -> Dataset:
    if preset_name is not None and preset_name not in PRESETS:
        raise DataValidationError(
            f"unknown preset {preset_name!r}. Hint: choose one of {', '.join(sorted(PRESETS))}"
        )
    preset = PRESETS[preset_name] if preset_name else Preset(columns={c: c for c in REQUIRED})
    unknown = set(mapping) - set(REQUIRED) - {"category", "brand"}
    if unknown:
        raise DataValidationError(
            f"cannot map {sorted(unknown)}: mappable columns are {REQUIRED} + category, brand"
        )
    columns = {**preset.columns, **{k: v for k, v in mapping.items() if k in REQUIRED}}
    product_columns = {
        **preset.product_columns,
        **{k: v for k, v in mapping.items() if k in ("category", "brand")},
    }
    files, fmt = _files(path, fmt)
    raw = _scan(files, fmt)
    where = str(path)
    _require_columns(raw, {**columns, **product_columns}, where)
    renamed = raw.select(
        *(pl.col(src).alias(dst) for dst, src in columns.items()),
        *(pl.col(src).alias(dst) for dst, src in product_columns.items()),
        "_file",
    )
    renamed = _cast_ts(renamed, preset.ts_format, where)
    _check_numeric(renamed, "price", where)
    renamed = renamed.with_columns(pl.col("price").cast(pl.Float32))
    event_type = pl.col("event_type").cast(pl.String)
    if preset.event_types:
        event_type = event_type.replace(dict(preset.event_types))
    renamed = renamed.with_columns(event_type)
    renamed, user_keys = _cast_id(renamed, "user_id", where)
    renamed, _ = _cast_id(renamed, "product_id", where)

    products = None
    if product_columns:
        category = pl.col("category").cast(pl.String)
        if preset_name == "rees46":  # "electronics.smartphone" -> "electronics"
            category = category.str.split(".").list.first()
        products = (
            renamed.group_by("product_id")
            .agg(
                category.fill_null(NO_CATEGORY).first().alias("category")
                if "category" in product_columns
                else pl.lit(NO_CATEGORY).alias("category"),
                pl.col("brand").cast(pl.String).drop_nulls().first().alias("brand")
                if "brand" in product_columns
                else pl.lit(None, pl.String).alias("brand"),
                pl.col("price").median().cast(pl.Float32).alias("base_price"),
            )
            .drop_nulls("product_id")
        )
    events = renamed.select(*REQUIRED, "_file")
    return Dataset(
        events=events,
        products=products,
        users=None,
        truth=None,
        source=path,
        declared_sorted=False,
        user_keys=user_keys,
    )
