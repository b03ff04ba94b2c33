"""Foreign event logs (Parquet/CSV, integer or string ids, other column names, the REES46
preset) read lazily into the contract's column names. Nothing is collected here: string ids
map to dense UInt32 ids through a lazy join.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from engine.exceptions import DataValidationError
from engine.io.dataset import (
    NO_CATEGORY,
    REQUIRED,
    Dataset,
    Format,
    list_files,
    require_columns,
    scan_files,
)
from engine.schema import TS


@dataclass(frozen=True)
class ForeignPreset:
    """How a known foreign layout maps onto the contract."""

    columns: Mapping[str, str]  # contract name -> source name
    event_types: Mapping[str, str] = field(default_factory=dict)  # source value -> contract
    ts_format: str | None = None
    product_columns: Mapping[str, str] = field(default_factory=dict)  # category/brand on events


FOREIGN_PRESETS: dict[str, ForeignPreset] = {
    "rees46": ForeignPreset(
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


def load_foreign(
    path: Path, fmt: Format, preset_name: str | None, mapping: Mapping[str, str]
) -> Dataset:
    if preset_name is not None and preset_name not in FOREIGN_PRESETS:
        raise DataValidationError(
            f"unknown preset {preset_name!r}. "
            f"Hint: choose one of {', '.join(sorted(FOREIGN_PRESETS))}"
        )
    preset = (
        FOREIGN_PRESETS[preset_name]
        if preset_name
        else ForeignPreset(columns={c: c for c in REQUIRED})
    )
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
    files, fmt = list_files(path, fmt)
    raw = scan_files(files, fmt)
    where = str(path)
    require_columns(raw, {**columns, **product_columns}, where)
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
