"""Ingest: a foreign log laid out natively gives the native answers, whatever its row order or
file split; a second run reuses it; the REES46 and RetailRocket quirks on hand-made files.

The reference for the round trip is independent of ingest: the native dataset rewritten with
only what a REES46 CSV carries (whole seconds, prices in cents, base prices as the NumPy
median of each product's positive prices), read by the native loader.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

import engine
from benchmarks.foreign_logs import write_rees46
from engine.cli import main
from engine.cohorts import CohortsConfig
from engine.commands import cohorts_from_data
from engine.exceptions import DatasetIOError, DataValidationError
from engine.features import FeaturesConfig, features_stage
from engine.io.dataset import DataSource
from engine.io.foreign import median_of_counts, price_counts
from engine.io.ingest import IngestConfig, ingest, ingested
from engine.schema import user_bucket
from synth import SynthConfig, generate_dataset

HEADER = (
    "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
)


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ingest") / "native"
    generate_dataset(SynthConfig(users=6_000, seed=11, products=800, part_users=4096), out)
    return out


@pytest.fixture(scope="module")
def csv_log(native: Path) -> Path:
    return write_rees46(native, native.parent / "log" / "2026-10.csv")[0]


@pytest.fixture(scope="module")
def reference(native: Path) -> Path:
    """The native dataset holding only what its REES46 export carries."""
    out = native.parent / "reference"
    events = (
        pl.read_parquet(native / "events" / "*.parquet")
        .with_columns(pl.col("ts").dt.truncate("1s"), pl.col("price").round(2))
        .sort("user_id", "ts", maintain_order=True)
    )
    medians = {
        product: float(np.median(prices[prices > 0])) if (prices > 0).any() else 0.0
        for product, prices in (
            (key[0], group["price"].to_numpy()) for key, group in events.group_by("product_id")
        )
    }
    products = (
        pl.read_parquet(native / "products.parquet")
        .filter(pl.col("product_id").is_in(list(medians)))
        .with_columns(
            pl.col("product_id")
            .replace_strict(medians, return_dtype=pl.Float32)
            .alias("base_price")
        )
    )
    (out / "events").mkdir(parents=True)
    events.write_parquet(out / "events" / "part-00000.parquet")
    products.write_parquet(out / "products.parquet")
    return out


def _features(data: Path) -> pl.DataFrame:
    result = features_stage(engine.load_dataset(data), FeaturesConfig())
    assert result.features is not None
    return result.features.sort("user_id")


def test_rees46_export_ingests_to_the_native_answers(
    tmp_path: Path, csv_log: Path, reference: Path
) -> None:
    result = ingest(DataSource(csv_log, preset="rees46"), tmp_path / "data")
    expected = pl.read_parquet(reference / "events" / "*.parquet")
    assert result.counts["events"] == expected.height
    assert not (tmp_path / "data" / "keys").exists()  # integer ids in u32 stay as they are
    assert_frame_equal(_features(tmp_path / "data"), _features(reference), check_exact=False)
    cohorts = [
        cohorts_from_data(engine.load_dataset(d), CohortsConfig(), tmp_path / f"c{i}").retention
        for i, d in enumerate((tmp_path / "data", reference))
    ]
    assert_frame_equal(cohorts[0], cohorts[1])
    # every user sits in the bucket the stable hash names (what Dask and K-Means rely on)
    dataset = engine.load_dataset(tmp_path / "data")
    for bucket, files in enumerate(dataset.buckets):
        ids = pl.read_parquet(list(files))["user_id"]
        assert (
            pl.select(user_bucket(pl.lit(ids), len(dataset.buckets))).to_series() == bucket
        ).all()


def _dataset_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def test_shuffled_rows_and_split_files_give_byte_identical_datasets(
    tmp_path: Path, native: Path, csv_log: Path
) -> None:
    shuffled = write_rees46(native, tmp_path / "shuffled.csv", shuffle=3)[0]
    split = tmp_path / "months"
    write_rees46(native, split, files=3)
    outputs = []
    for i, source in enumerate((csv_log, shuffled, split)):
        ingest(DataSource(source, preset="rees46"), tmp_path / f"d{i}", IngestConfig(buckets=3))
        outputs.append(_dataset_files(tmp_path / f"d{i}"))
    assert outputs[0] == outputs[1] == outputs[2]
    assert any(name.startswith("events/bucket=") for name in outputs[0])


def test_a_second_run_reuses_the_ingest_until_the_source_changes(
    tmp_path: Path, csv_log: Path
) -> None:
    log = tmp_path / "log.csv"
    shutil.copy(csv_log, log)
    source = DataSource(log, preset="rees46")
    first = ingested(source, tmp_path / "data", IngestConfig())
    stamp = (tmp_path / "data" / "manifest.json").stat().st_mtime_ns
    again = ingested(source, tmp_path / "data", IngestConfig())
    assert not first.reused and again.reused
    assert (tmp_path / "data" / "manifest.json").stat().st_mtime_ns == stamp
    with log.open("a") as handle:  # one more event: the source changed
        handle.write("2026-12-01 00:00:00 UTC,view,1,5,x.y,b,1.0,999999,s\n")
    changed = ingested(source, tmp_path / "data", IngestConfig())
    assert not changed.reused and changed.counts["events"] == first.counts["events"] + 1
    other = tmp_path / "notes"
    other.mkdir()
    with pytest.raises(DatasetIOError, match="not an ecomscale dataset"):
        ingested(source, other, IngestConfig())


def test_rees46_quirks(tmp_path: Path) -> None:
    log = tmp_path / "2019-Oct.csv"
    log.write_text(
        HEADER
        # product 10: category_code missing on one row; its category_id says "kids"
        + "2019-10-01 00:00:00 UTC,view,10,77,kids.toys,lego,5.00,1,s\n"
        + "2019-10-01 00:00:02 UTC,view,10,77,,lego,5.00,2,s\n"
        # product 11: only rows without a code; its category_id 77 is "kids" elsewhere
        + "2019-10-01 00:00:03 UTC,view,11,77,,,0,2,s\n"
        # product 12: no code, unknown category_id, no brand; zero and positive prices
        + "2019-10-01 00:00:04 UTC,view,12,88,,,0,3,s\n"
        + "2019-10-01 00:00:05 UTC,cart,12,88,,,4.00,3,s\n"
        + "2019-10-01 00:00:05 UTC,cart,12,88,,,4.00,3,s\n"  # exact duplicate
        + "2019-10-01 00:00:09 UTC,purchase,12,88,,,6.00,3,s\n"
        # product 13: category conflict, "sport" twice, "kids" once but latest
        + "2019-10-01 00:00:06 UTC,view,13,99,sport.ball,nike,9.00,1,s\n"
        + "2019-10-01 00:00:07 UTC,view,13,99,sport.ball,nike,9.00,2,s\n"
        + "2019-10-01 00:00:08 UTC,view,13,98,kids.ball,nike,9.00,3,s\n"
    )
    result = ingest(DataSource(log, preset="rees46"), tmp_path / "data")
    assert result.counts["exact_duplicates"] == 1 and result.counts["events"] == 9
    assert result.counts["product_conflicts"] == {"category": 1, "brand": 0}
    products = pl.read_parquet(tmp_path / "data" / "products.parquet")
    rows = {r["product_id"]: r for r in products.iter_rows(named=True)}
    assert rows[10]["category"] == rows[11]["category"] == "kids"
    assert rows[12]["category"] == "(none)" and rows[12]["brand"] is None
    # base prices are over the kept events (the repeated row dropped): median(4, 6)
    assert rows[11]["base_price"] == 0.0 and rows[12]["base_price"] == 5.0
    assert rows[13]["category"] == "sport"
    events = pl.read_parquet(tmp_path / "data" / "events" / "**" / "*.parquet")
    assert str(events["ts"].min()) == "2019-10-01 00:00:00+00:00"  # the " UTC" suffix
    assert sorted(events["event_type"].cast(pl.String).unique()) == [
        "add_to_cart",
        "purchase",
        "view",
    ]


def test_conflict_rule_ignores_row_order(tmp_path: Path) -> None:
    rows = [
        "2019-10-01 00:00:01 UTC,view,1,5,a.x,b1,1,1,s\n",
        "2019-10-01 00:00:02 UTC,view,1,5,b.x,b2,1,2,s\n",  # a tie: 1 row each ...
        "2019-10-01 00:00:03 UTC,view,2,6,c.x,b3,1,3,s\n",
        "2019-10-01 00:00:03 UTC,view,2,6,d.x,b4,1,4,s\n",  # ... same latest ts: smallest
    ]
    tables = []
    for order in (rows, rows[::-1]):
        log = tmp_path / f"log{len(tables)}.csv"
        log.write_text(HEADER + "".join(order))
        ingest(DataSource(log, preset="rees46"), tmp_path / f"d{len(tables)}")
        tables.append(pl.read_parquet(tmp_path / f"d{len(tables)}" / "products.parquet"))
    assert_frame_equal(tables[0], tables[1])
    assert tables[0]["category"].to_list() == ["b", "c"]  # latest wins, then the smallest
    assert tables[0]["brand"].to_list() == ["b2", "b3"]


def test_string_ids_get_ids_in_their_bucket_and_map_back(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    names = [f"user-{i:03d}" for i in range(40)]
    log.write_text(
        "visitor,when,action,item,amount\n"
        + "".join(
            f"{n},2026-03-01T10:{i % 60:02d}:00,view,sku-{i % 7},2.5\n" for i, n in enumerate(names)
        )
    )
    columns = {
        "user_id": "visitor",
        "ts": "when",
        "event_type": "action",
        "product_id": "item",
        "price": "amount",
    }
    ingest(DataSource(log, columns=columns), tmp_path / "data", IngestConfig(buckets=4))
    dataset = engine.load_dataset(tmp_path / "data")
    assert dataset.user_keys is not None
    keys = dataset.user_keys.collect()
    assert sorted(keys["key"].to_list()) == names
    for bucket, files in enumerate(dataset.buckets):
        ids = pl.read_parquet(list(files))["user_id"] if files else pl.Series([], dtype=pl.UInt32)
        assert (pl.select(user_bucket(pl.lit(ids), 4)).to_series() == bucket).all()
    products = pl.read_parquet(tmp_path / "data" / "keys" / "products.parquet")
    assert products["product_id"].to_list() == list(range(7))  # numbered in key order
    assert products["key"].to_list() == [f"sku-{i}" for i in range(7)]


def test_retailrocket_preset_with_item_properties(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,view,248676,\n"
        "1433221999827,992329,addtocart,248676,\n"
        "1433222276276,992329,transaction,248676,4000\n"
    )
    props = tmp_path / "item_properties_part1.csv"
    props.write_text(
        "timestamp,itemid,property,value\n"
        "1433041200000,248676,790,n5880.000\n"
        "1433646000000,248676,790,n6000.000\n"  # the latest price wins
        "1433041200000,248676,categoryid,1338\n"
        "1433041200000,355908,categoryid,1277\n"
    )
    tree = tmp_path / "category_tree.csv"
    tree.write_text("categoryid,parentid\n1338,250\n250,\n1277,\n")
    source = DataSource(events, preset="retailrocket", item_properties=(props,), category_tree=tree)
    result = ingest(source, tmp_path / "data")
    assert result.counts["events"] == 4
    data = pl.read_parquet(tmp_path / "data" / "events" / "**" / "*.parquet").sort("ts")
    assert data["event_type"].cast(pl.String).to_list() == [
        "view",
        "add_to_cart",
        "purchase",
        "view",
    ]
    assert str(data["ts"][0]) == "2015-06-02 05:02:12.117000+00:00"
    assert data.filter(pl.col("product_id") == 248676)["price"].to_list() == [6000.0] * 3
    products = pl.read_parquet(tmp_path / "data" / "products.parquet").sort("product_id")
    assert products["category"].to_list() == ["250", "1277"]  # 1338 rolled up to its root


def test_bad_rows_are_named_or_set_aside_beside_the_dataset(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(
        HEADER
        + "2019-10-01 00:00:00 UTC,view,1,5,a.b,x,1.0,1,s\n"
        + "2019-10-01 00:00:01 UTC,wishlist,1,5,a.b,x,1.0,1,s\n"
        + "not a time,view,1,5,a.b,x,1.0,2,s\n"
    )
    source = DataSource(log, preset="rees46")
    with pytest.raises(DataValidationError, match=r"log\.csv: column ts"):
        ingest(source, tmp_path / "strict")
    assert not (tmp_path / "strict").exists()  # nothing half-written
    result = ingest(source, tmp_path / "data", IngestConfig(on_bad_rows="quarantine"))
    assert result.manifest["validation"] == {"null_ts": 1, "unknown_event_type": 1}
    set_aside = pl.read_parquet(tmp_path / "data" / "quarantine" / "**" / "*.parquet")
    assert set_aside.height == 2
    assert log.read_text().count("\n") == 4  # the input is never modified


def test_cli_run_on_a_foreign_log_ingests_once(tmp_path: Path, csv_log: Path) -> None:
    runner = CliRunner()
    args = ["run", str(csv_log), "--preset", "rees46", "--out", str(tmp_path / "out"), "--k", "3"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert "rows/s" in first.output and (tmp_path / "out" / "data" / "manifest.json").exists()
    second = runner.invoke(main, args)
    assert second.exit_code == 0 and "source unchanged" in second.output
    manifest = json.loads((tmp_path / "out" / "data" / "manifest.json").read_text())
    assert manifest["source"]["files"][0]["bytes"] == csv_log.stat().st_size
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    bad = runner.invoke(main, ["ingest", str(empty), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "empty file" in bad.output and "Traceback" not in bad.output


def test_median_from_partial_price_counts_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    events = pl.DataFrame(
        {
            "product_id": rng.integers(0, 50, 4000).astype(np.uint32),
            "price": rng.choice([0.0, 1.5, 2.0, 2.25, 9.99, 10.0], 4000).astype(np.float32),
        }
    )
    parts = [price_counts(events.slice(i, 1000).lazy()).collect() for i in range(0, 4000, 1000)]
    ours = dict(median_of_counts(pl.concat(parts).lazy()).collect().iter_rows())
    for (product,), group in events.filter(pl.col("price") > 0).group_by("product_id"):
        expected = np.median(group["price"].to_numpy().astype(np.float64))
        assert ours[product] == pytest.approx(expected, rel=1e-7)
    assert set(ours) == set(events.filter(pl.col("price") > 0)["product_id"].to_list())
