"""Foreign event logs (Parquet/CSV, integer or string ids, other column names, the REES46 and
RetailRocket presets) read lazily into the contract's column names.

``normalized_events`` is the one reading of a foreign log: contract names, ts parsed, event
types mapped, the source's own user and product keys kept as they are. ``ingest`` lays it
out natively; ``load_foreign`` maps keys lazily for small logs read in place. Nothing is
collected here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from engine.exceptions import DataValidationError
from engine.io.dataset import (
    NO_CATEGORY,
    REQUIRED,
    Dataset,
    DataSource,
    require_columns,
    scan_files,
)
from engine.schema import TS

PRODUCT_ATTRIBUTES = ("category", "brand")
MAPPABLE = (*REQUIRED, *PRODUCT_ATTRIBUTES)


@dataclass(frozen=True)
class ForeignPreset:
    """How a known foreign layout maps onto the contract.

    Attributes:
        columns: contract name -> source name (events; "price" may be absent).
        event_types: source value -> contract value.
        ts_format: strptime format of a string ts; ts_unit: the unit of an integer ts.
        product_columns: "category"/"brand"/"category_id" -> source name, on the events.
        category_levels: keep the first level of a dotted category ("a.b.c" -> "a").
        drop_exact_duplicates: the source repeats events exactly (double logging);
            ingest keeps one of each and reports how many it dropped.
    """

    columns: Mapping[str, str]
    event_types: Mapping[str, str] = field(default_factory=dict)
    ts_format: str | None = None
    ts_unit: Literal["s", "ms", "us"] | None = None
    product_columns: Mapping[str, str] = field(default_factory=dict)
    category_levels: bool = False
    drop_exact_duplicates: bool = False


FOREIGN_PRESETS: dict[str, ForeignPreset] = {
    # REES46 "eCommerce behavior data from multi category store": one time-ordered CSV per
    # month; category_code is often empty where category_id is not, brands are often
    # empty, some prices are 0 and some rows repeat exactly.
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
        product_columns={
            "category": "category_code",
            "brand": "brand",
            "category_id": "category_id",
        },
        category_levels=True,
        drop_exact_duplicates=True,
    ),
    # RetailRocket: events.csv (timestamp in ms, visitorid, event, itemid); no price and no
    # category on the events: both come from item_properties*.csv when given.
    "retailrocket": ForeignPreset(
        columns={
            "user_id": "visitorid",
            "ts": "timestamp",
            "event_type": "event",
            "product_id": "itemid",
        },
        event_types={"addtocart": "add_to_cart", "transaction": "purchase"},
        ts_unit="ms",
        drop_exact_duplicates=True,
    ),
}


def preset_of(source: DataSource) -> ForeignPreset:
    """The source's preset with its --column overrides applied (checked here)."""
    if source.preset is not None and source.preset not in FOREIGN_PRESETS:
        raise DataValidationError(
            f"unknown preset {source.preset!r}. "
            f"Hint: choose one of {', '.join(sorted(FOREIGN_PRESETS))}"
        )
    unknown = set(source.columns) - set(MAPPABLE)
    if unknown:
        raise DataValidationError(
            f"cannot map {sorted(unknown)}: mappable columns are {', '.join(MAPPABLE)}"
        )
    base = (
        FOREIGN_PRESETS[source.preset] if source.preset else ForeignPreset({c: c for c in REQUIRED})
    )
    given = dict(source.columns)
    columns = {**base.columns, **{k: v for k, v in given.items() if k in REQUIRED}}
    products = {**base.product_columns, **{k: v for k, v in given.items() if k not in REQUIRED}}
    if source.item_properties and source.preset != "retailrocket":
        raise DataValidationError("--item-properties belongs to --preset retailrocket")
    return ForeignPreset(
        columns,
        base.event_types,
        base.ts_format,
        base.ts_unit,
        products,
        base.category_levels,
        base.drop_exact_duplicates,
    )


def _check_key(lf: pl.LazyFrame, name: str, where: str) -> None:
    dtype = lf.collect_schema()[name]
    if not (dtype.is_integer() or dtype in (pl.String, pl.Categorical)):
        raise DataValidationError(
            f"{where}: column {name!r} has type {dtype}; expected integer or string ids"
        )


def _ts(lf: pl.LazyFrame, preset: ForeignPreset, where: str) -> pl.Expr:
    dtype = lf.collect_schema()["ts"]
    if dtype == pl.String:
        return pl.col("ts").str.to_datetime(
            preset.ts_format, time_unit="us", time_zone="UTC", strict=False
        )
    if isinstance(dtype, pl.Datetime):
        ts = pl.col("ts")
        return (ts.dt.replace_time_zone("UTC") if dtype.time_zone is None else ts).cast(TS)
    if dtype.is_integer() and preset.ts_unit is not None:
        return pl.from_epoch(pl.col("ts"), time_unit=preset.ts_unit).dt.replace_time_zone("UTC")
    raise DataValidationError(
        f"{where}: column 'ts' has type {dtype}; expected a datetime or an ISO-8601 string"
    )


def normalized_events(source: DataSource) -> tuple[pl.LazyFrame, ForeignPreset]:
    """The foreign log in contract names: user_id and product_id as the source's own keys
    (integers or strings), ts as Datetime(us, UTC), event_type mapped (String), price
    Float32, the product columns the preset names (as strings), and ``_file``."""
    preset = preset_of(source)
    files, fmt = source.files()
    raw = scan_files(files, fmt)
    where = str(source.path)
    require_columns(raw, {**preset.columns, **preset.product_columns}, where)
    renamed = raw.select(
        *(pl.col(src).alias(dst) for dst, src in preset.columns.items()),
        *(pl.col(src).alias(dst) for dst, src in preset.product_columns.items()),
        "_file",
    )
    for key in ("user_id", "product_id"):
        _check_key(renamed, key, where)
    if "price" in preset.columns and not renamed.collect_schema()["price"].is_numeric():
        dtype = renamed.collect_schema()["price"]
        raise DataValidationError(f"{where}: column 'price' has type {dtype}; expected numbers")
    event_type: pl.Expr = pl.col("event_type").cast(pl.String)
    # A when/then chain, not Expr.replace: on the streaming engine replace kept memory that
    # grew with the input (measured), this stays flat and is faster.
    for source_value, contract_value in preset.event_types.items():
        event_type = (
            pl.when(event_type == source_value).then(pl.lit(contract_value)).otherwise(event_type)
        )
    event_type = event_type.alias("event_type")
    schema = renamed.collect_schema()
    columns = [
        *(
            pl.col(k).cast(pl.String)
            for k in ("user_id", "product_id")
            if schema[k] == pl.Categorical
        ),
        _ts(renamed, preset, where).alias("ts"),
        event_type,
    ]
    if "price" in preset.columns:
        columns.append(pl.col("price").cast(pl.Float32))
    columns.extend(pl.col(name).cast(pl.String) for name in preset.product_columns)
    events = renamed.with_columns(*columns)
    if source.item_properties:
        events = _with_item_properties(events, source)
    elif "price" not in preset.columns:  # documented: prices are 0 without item properties
        events = events.with_columns(pl.lit(0.0, pl.Float32).alias("price"))
    return events, preset


def _with_item_properties(events: pl.LazyFrame, source: DataSource) -> pl.LazyFrame:
    """RetailRocket's item properties: price (property 790, "n"-prefixed) and category
    (categoryid, rolled up to its root through category_tree.csv when given); each item's
    latest value, ties to the largest value."""
    props = scan_files(list(source.item_properties), "csv")
    require_columns(
        props, {c: c for c in ("timestamp", "itemid", "property", "value")}, "item properties"
    )

    def latest(prop: str) -> pl.LazyFrame:
        return (
            props.filter(pl.col("property").cast(pl.String) == prop)
            .group_by(pl.col("itemid").alias("product_id"))
            .agg(pl.col("value").cast(pl.String).sort_by("timestamp", "value").last().alias(prop))
        )

    category = pl.col("categoryid")
    if source.category_tree is not None:
        category = category.replace_strict(_category_roots(source.category_tree), default=category)
    table = latest("categoryid").join(latest("790"), on="product_id", how="full", coalesce=True)
    table = table.select(
        "product_id",
        pl.col("790").str.strip_prefix("n").cast(pl.Float32, strict=False).alias("_item_price"),
        category.alias("category"),
    )
    key = events.collect_schema()["product_id"]
    return (
        events.drop("category", strict=False)
        .join(
            table.with_columns(pl.col("product_id").cast(key, strict=False)),
            on="product_id",
            how="left",
        )
        .with_columns(pl.col("_item_price").fill_null(0.0).alias("price"))
        .drop("_item_price")
    )


def _category_roots(tree: Path) -> dict[str, str]:
    """categoryid -> its root category id, from RetailRocket's category_tree.csv."""
    table = pl.read_csv(tree, schema_overrides={"categoryid": pl.String, "parentid": pl.String})
    parent = dict(table.select("categoryid", "parentid").iter_rows())
    roots = {}
    for child in parent:
        node, seen = child, set()
        while parent.get(node) is not None and node not in seen:
            seen.add(node)
            node = parent[node]
        roots[child] = node
    return roots


def product_stats(events: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per product and attribute values (category, brand, category_id where the source
    has them): ``_n`` rows, ``_last`` their latest ts. Everything the products table needs
    besides prices, small and additive (partial tables can be summed)."""
    names = events.collect_schema().names()
    attributes = [c for c in (*PRODUCT_ATTRIBUTES, "category_id") if c in names]
    return events.group_by("product_id", *attributes).agg(
        pl.len().alias("_n"), pl.col("ts").max().alias("_last")
    )


def price_counts(events: pl.LazyFrame) -> pl.LazyFrame:
    """Rows per (product_id, positive price): additive, so partial counts (one per bucket)
    can be summed, and small (a product has few distinct prices)."""
    return (
        events.filter(pl.col("price") > 0)
        .group_by("product_id", "price")
        .agg(pl.len().cast(pl.Int64).alias("_n"))
    )


def median_of_counts(counts: pl.LazyFrame) -> pl.LazyFrame:
    """product_id -> base_price, the exact median of its prices from ``price_counts`` (the
    mean of the two middle values for an even count, as ``Expr.median``)."""
    per_price = counts.group_by("product_id", "price").agg(pl.col("_n").sum())
    ranked = per_price.sort("product_id", "price").with_columns(
        pl.col("_n").cum_sum().over("product_id").alias("_upto"),
        pl.col("_n").sum().over("product_id").alias("_total"),
    )
    # 0-based positions of the middle values; a value covers positions up to _upto - 1
    low = pl.col("price").filter(pl.col("_upto") > (pl.col("_total") - 1) // 2).min()
    high = pl.col("price").filter(pl.col("_upto") > pl.col("_total") // 2).min()
    middle = (low.cast(pl.Float64) + high.cast(pl.Float64)) / 2
    return ranked.group_by("product_id").agg(middle.cast(pl.Float32).alias("base_price"))


def base_prices(events: pl.LazyFrame) -> pl.LazyFrame:
    """product_id -> base_price: the median of its positive prices (none: no row)."""
    return median_of_counts(price_counts(events))


def resolved_attribute(stats: pl.LazyFrame, name: str, key: str = "product_id") -> pl.LazyFrame:
    """key -> ``name``, one value per key by a rule that ignores row order: the most
    frequent non-null value, ties to the value seen latest, then the smallest; with
    ``_conflict_<name>`` true where a key has more than one value."""
    counts = (
        stats.filter(pl.col(name).is_not_null())
        .group_by(key, name)
        .agg(pl.col("_n").sum(), pl.col("_last").max())
    )
    return counts.group_by(key).agg(
        pl.col(name).sort_by("_n", "_last", name, descending=[True, True, False]).first(),
        (pl.len() > 1).alias(f"_conflict_{name}"),
    )


def products_table(
    stats: pl.LazyFrame, prices: pl.LazyFrame, *, category_levels: bool = False
) -> pl.LazyFrame:
    """One row per product of ``product_stats`` (dense ids): category and brand by
    ``resolved_attribute`` (NO_CATEGORY and null when never given; a row without a category
    but with a category_id takes the category that id carries elsewhere, REES46's gaps),
    base_price from ``base_prices`` (0 when none), and the ``_conflict_*`` flags."""
    names = stats.collect_schema().names()
    if "category_id" in names:
        by_id = resolved_attribute(stats, "category", key="category_id").select(
            "category_id", pl.col("category").alias("_by_id")
        )
        stats = stats.join(by_id, on="category_id", how="left").with_columns(
            pl.coalesce("category", "_by_id").alias("category")
        )
    if category_levels and "category" in names:  # "electronics.smartphone" -> "electronics"
        stats = stats.with_columns(pl.col("category").str.split(".").list.first())
    table = stats.select("product_id").unique().drop_nulls()
    table = table.join(prices, on="product_id", how="left")
    for name in PRODUCT_ATTRIBUTES:
        if name in names:
            table = table.join(resolved_attribute(stats, name), on="product_id", how="left")
        else:
            table = table.with_columns(
                pl.lit(None, pl.String).alias(name), pl.lit(False).alias(f"_conflict_{name}")
            )
    return table.select(
        "product_id",
        pl.col("category").fill_null(NO_CATEGORY),
        "brand",
        pl.col("base_price").fill_null(0.0),
        *(pl.col(f"_conflict_{n}").fill_null(False) for n in PRODUCT_ATTRIBUTES),
    ).sort("product_id")


def dense_keys(keys: pl.LazyFrame, name: str) -> pl.LazyFrame:
    """The key map of one id column: the source's distinct keys in their own order (numbers
    numerically, strings lexicographically) numbered 0.. as UInt32 ``name``, beside ``key``.
    Ids that are already 0..n-1 map to themselves."""
    return (
        keys.select(pl.col(name).alias("key"))
        .drop_nulls()
        .unique()
        .sort("key")
        .with_row_index(name)
        .select(pl.col(name).cast(pl.UInt32), "key")
    )


def with_dense_id(
    events: pl.LazyFrame, keys: pl.LazyFrame | pl.DataFrame, name: str, *, keep_order: bool = True
) -> pl.LazyFrame:
    """Replace the source keys in column ``name`` by their dense ids (null stays null);
    ``keep_order``: keep the rows' order (the tie order of equal timestamps)."""
    return (
        events.rename({name: "_key"})
        .join(
            keys.lazy().rename({name: "_dense", "key": "_key"}),
            on="_key",
            how="left",
            maintain_order="left" if keep_order else "none",
        )
        .rename({"_dense": name})
        .drop("_key")
    )


def load_foreign(source: DataSource) -> Dataset:
    """A foreign log read in place, lazily (``ecomscale ingest`` lays big logs out once
    instead): integer ids are kept, string ids map to dense UInt32 ids."""
    events, preset = normalized_events(source)
    user_keys = None
    for name in ("user_id", "product_id"):
        if events.collect_schema()[name] == pl.String:
            keys = dense_keys(events, name)
            events = with_dense_id(events, keys, name)
            user_keys = keys if name == "user_id" else user_keys
        else:
            events = events.with_columns(pl.col(name).cast(pl.UInt32, strict=False))
    products = None
    if set(events.collect_schema().names()) & {"category", "brand", "category_id"}:
        products = products_table(
            product_stats(events), base_prices(events), category_levels=preset.category_levels
        ).drop("_conflict_category", "_conflict_brand")
    return Dataset(
        events=events.select(*REQUIRED, "_file"),
        products=products,
        users=None,
        truth=None,
        source=source.path,
        declared_sorted=False,
        user_keys=user_keys,
    )
