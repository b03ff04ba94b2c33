"""Our native datasets written out as a foreign shop would export them (the REES46 layout:
one time-ordered CSV, whole-second "... UTC" timestamps, "cart" for add_to_cart, a dotted
category_code and a category_id), so that the foreign path can be measured and tested
against the native one on the same events.

    python -m benchmarks.foreign_logs DATA OUT.csv [--files N] [--shuffle SEED]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

REES46_COLUMNS = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)


def rees46_events(data: Path) -> pl.LazyFrame:
    """The events of the native dataset at ``data`` in the REES46 columns, time-ordered."""
    events = pl.scan_parquet(data / "events" / "**" / "*.parquet")
    products = pl.scan_parquet(data / "products.parquet").select(
        "product_id",
        pl.col("category")
        .rank("dense")
        .cast(pl.Int64)
        .add(2053013552326770000)
        .alias("category_id"),
        (pl.col("category") + ".all").alias("category_code"),
        "brand",
    )
    return (
        events.join(products, on="product_id", how="left")
        .sort("ts", "user_id", maintain_order=True)
        .select(
            pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S UTC").alias("event_time"),
            pl.col("event_type").cast(pl.String).replace({"add_to_cart": "cart"}),
            "product_id",
            "category_id",
            "category_code",
            "brand",
            pl.col("price").round(2),
            "user_id",
            pl.format("{}-{}", "user_id", pl.col("ts").dt.date()).alias("user_session"),
        )
    )


def write_rees46(
    data: Path, out: Path, *, files: int = 1, shuffle: int | None = None
) -> list[Path]:
    """Write ``data``'s events as REES46 CSV: one file, or ``files`` consecutive monthly-style
    slices under the folder ``out``; ``shuffle``: rows in a random order of that seed."""
    events = rees46_events(data)
    if shuffle is not None:
        frame = events.collect()
        events = frame.sample(fraction=1.0, shuffle=True, seed=shuffle).lazy()
    if files == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        events.sink_csv(out)
        return [out]
    frame = events.collect()
    out.mkdir(parents=True, exist_ok=True)
    size = -(-frame.height // files)
    written = []
    for i in range(files):
        path = out / f"2019-{i + 1:02d}.csv"
        frame.slice(i * size, size).write_csv(path)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--shuffle", type=int, default=None)
    args = parser.parse_args()
    for path in write_rees46(args.data, args.out, files=args.files, shuffle=args.shuffle):
        print(path)


if __name__ == "__main__":
    main()
