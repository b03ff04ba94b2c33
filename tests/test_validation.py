"""Validation rules, policies, loading of foreign layouts, and unreadable input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from engine.exceptions import DatasetIOError, DataValidationError
from engine.features import compute_features
from engine.io.dataset import Dataset, load_dataset
from engine.schema import EVENT_TYPE
from engine.validation import RULES, validate_events
from synth import SynthConfig, generate_dataset

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
GOOD = [
    (1, T0, "view", 10, 5.0),
    (1, T0 + S, "add_to_cart", 10, 5.0),
    (2, T0, "view", 11, 7.0),
    (2, T0 + 2 * S, "purchase", 11, 7.0),
]
RAW_SCHEMA = {
    "user_id": pl.UInt32,
    "ts": pl.Datetime("us", "UTC"),
    "event_type": pl.String,
    "product_id": pl.UInt32,
    "price": pl.Float32,
}


def raw(rows: list[tuple[object, ...]]) -> pl.LazyFrame:
    frame = pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")
    return frame.lazy().with_columns(pl.lit("events.parquet").alias("_file"))


BROKEN = {
    "null_user_id": (None, T0 + 3 * S, "view", 11, 7.0),
    "null_ts": (2, None, "view", 11, 7.0),
    "null_product_id": (2, T0 + 3 * S, "view", None, 7.0),
    "null_event_type": (2, T0 + 3 * S, None, 11, 7.0),
    "unknown_event_type": (2, T0 + 3 * S, "wishlist", 11, 7.0),
    "null_price": (2, T0 + 3 * S, "view", 11, None),
    "negative_price": (2, T0 + 3 * S, "view", 11, -1.0),
    "non_finite_price": (2, T0 + 3 * S, "view", 11, float("nan")),
    "duplicate_event": (2, T0 + 2 * S, "purchase", 11, 7.0),
    "unsorted": (2, T0 + S, "view", 11, 7.0),
}


def test_every_rule_is_tested() -> None:
    assert set(BROKEN) == set(RULES)


@pytest.mark.parametrize("rule", sorted(BROKEN))
def test_rule_under_error_names_file_column_and_count(rule: str) -> None:
    with pytest.raises(DataValidationError) as info:
        validate_events(raw([*GOOD, BROKEN[rule]]))
    message = str(info.value)
    column = RULES[rule][0]
    assert message.startswith("events.parquet: column ")
    assert f"column {column}: 1 rows" in message
    assert "Hint:" in message and "\n" not in message


@pytest.mark.parametrize("rule", sorted(set(BROKEN) - {"unknown_event_type"}))
# A given as_of before the broken row: rows after as_of are not featurised, yet checked.
@pytest.mark.parametrize("as_of", [None, T0 + S], ids=["default-as-of", "given-as-of"])
# Up to bucket_rows rows: one read; above: user ranges of one user each.
@pytest.mark.parametrize("bucket_rows", [5_000_000, 0], ids=["one-read", "user-ranges"])
def test_sorted_input_with_a_broken_row_is_not_featurised_with_checks_riding_along(
    rule: str, as_of: dt.datetime | None, bucket_rows: int
) -> None:
    # Our own layout (sorted, event_type an Enum) has the rule checks run inside the
    # features queries (and a pass over user_id and ts for the ranges): a broken row must
    # still stop them, with the usual message.
    events = raw([*GOOD, BROKEN[rule]]).with_columns(pl.col("event_type").cast(EVENT_TYPE))
    ds = Dataset(events, None, None, None, Path("events.parquet"), declared_sorted=True)
    options = {"as_of": as_of, "bucket_rows": bucket_rows, "range_users": 1}
    with pytest.raises(DataValidationError, match=re.escape(f"column {RULES[rule][0]}: 1 rows")):
        compute_features(ds, **options)
    clean = dataclasses.replace(
        ds, events=raw(GOOD).with_columns(pl.col("event_type").cast(EVENT_TYPE))
    )
    result = compute_features(clean, **options)
    expected = [2, 2] if as_of is None else [2, 1]
    assert result.features is not None and result.features["n_events"].to_list() == expected
    assert result.report.ts_max == T0 + 2 * S and result.report.user_max == 2


@pytest.mark.parametrize("rule", sorted(set(BROKEN) - {"unsorted"}))
def test_rule_under_drop_and_quarantine(rule: str, tmp_path: Path) -> None:
    clean, report = validate_events(raw([*GOOD, BROKEN[rule]]), on_bad_rows="drop")
    assert report.counts == {rule: 1} and report.rows_out == 4
    assert clean.collect().height == 4
    _, report = validate_events(
        raw([*GOOD, BROKEN[rule]]), on_bad_rows="quarantine", quarantine_dir=tmp_path
    )
    assert report.quarantine_path is not None
    rejected = pl.read_parquet(report.quarantine_path)
    assert rejected["_rule"].to_list() == [rule]


@pytest.mark.parametrize(
    "dtype", [pl.Categorical, pl.Enum(["view", "add_to_cart", "purchase", "wishlist"])]
)
def test_unknown_event_types_in_categorical_and_foreign_enum_columns(dtype: pl.DataType) -> None:
    events = raw([*GOOD, BROKEN["unknown_event_type"]]).with_columns(
        pl.col("event_type").cast(dtype)
    )
    _, report = validate_events(events, on_bad_rows="drop")
    assert report.counts == {"unknown_event_type": 1} and report.rows_out == 4


def test_unsorted_rows_are_sorted_not_dropped() -> None:
    rows = [GOOD[2], GOOD[3], GOOD[0], GOOD[1]]  # user 2 before user 1
    clean, report = validate_events(raw(rows), on_bad_rows="drop")
    assert report.resorted and report.rows_out == 4 and report.counts == {}
    out = clean.collect()
    assert out["user_id"].to_list() == [1, 1, 2, 2]
    assert out.schema["event_type"] == pl.Enum(
        ["view", "add_to_cart", "remove_from_cart", "purchase"]
    )


def test_duplicates_found_after_sorting() -> None:
    rows = [GOOD[2], GOOD[0], GOOD[3], GOOD[1], GOOD[0]]  # the duplicate is not adjacent
    _, report = validate_events(raw(rows), on_bad_rows="drop", declared_sorted=False)
    assert report.resorted and report.counts == {"duplicate_event": 1}


def test_duplicates_revealed_by_sorting_still_stop_under_error() -> None:
    rows = [GOOD[2], GOOD[0], GOOD[3], GOOD[1], GOOD[0]]
    with pytest.raises(DataValidationError, match="repeat the previous event"):
        validate_events(raw(rows), declared_sorted=False)


def test_foreign_unsorted_input_is_not_an_error() -> None:
    rows = [GOOD[2], GOOD[3], GOOD[0], GOOD[1]]
    clean, report = validate_events(raw(rows), declared_sorted=False)
    assert report.resorted and clean.collect().height == 4


def test_empty_input() -> None:
    with pytest.raises(DataValidationError, match="no events"):
        validate_events(raw([]))


def test_empty_and_header_only_csv_files(tmp_path: Path) -> None:
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("user_id,ts,event_type,product_id,price\n")
    with pytest.raises(DataValidationError, match="empty.csv: empty file"):
        load_dataset(empty, format="csv")
    with pytest.raises(DataValidationError, match="header.csv: a header but no rows"):
        load_dataset(header, format="csv")


def _write_dataset_with(tmp_path: Path, events: pl.DataFrame) -> Path:
    root = tmp_path / "ds"
    (root / "events").mkdir(parents=True)
    events.write_parquet(root / "events" / "part-00000.parquet")
    return root


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "events").mkdir(parents=True)
    (root / "events" / "part-00000.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetIOError, match="part-00000.parquet: cannot read as parquet"):
        load_dataset(root)


def test_missing_and_mistyped_columns(tmp_path: Path) -> None:
    good = pl.DataFrame(GOOD, schema=RAW_SCHEMA, orient="row")
    root = _write_dataset_with(tmp_path / "a", good.drop("price"))
    with pytest.raises(DataValidationError, match="missing column 'price'.*Hint"):
        load_dataset(root)
    root = _write_dataset_with(tmp_path / "b", good.with_columns(pl.col("price").cast(pl.String)))
    with pytest.raises(
        DataValidationError, match="column 'price' has type String; expected Float32"
    ):
        load_dataset(root)


def test_missing_path() -> None:
    with pytest.raises(DatasetIOError, match="no such file"):
        load_dataset("/nonexistent/events")


def test_foreign_csv_with_string_ids_and_mapping(tmp_path: Path) -> None:
    csv = tmp_path / "log.csv"
    csv.write_text(
        "visitor,when,action,item,amount,cat\n"
        "bob,2026-03-01T10:00:00,view,A1,9.5,toys\n"
        "alice,2026-03-01T10:00:00,view,B2,3.0,food\n"
        "bob,2026-03-01T10:05:00,purchase,A1,9.5,toys\n"
        "alice,2026-03-01T12:00:00,view,A1,9.5,toys\n"
    )
    mapping = {
        "user_id": "visitor",
        "ts": "when",
        "event_type": "action",
        "product_id": "item",
        "price": "amount",
        "category": "cat",
    }
    ds = load_dataset(csv, columns=mapping)
    result = compute_features(ds)
    assert ds.user_keys is not None
    keys = dict(ds.user_keys.collect().iter_rows())
    feats = result.features.with_columns(pl.col("user_id").replace_strict(keys).alias("who"))
    bob = feats.filter(pl.col("who") == "bob").row(0, named=True)
    alice = feats.filter(pl.col("who") == "alice").row(0, named=True)
    assert bob["n_purchases"] == 1 and bob["revenue"] == pytest.approx(9.5)
    assert alice["n_sessions"] == 2 and alice["top_category"] == "food"
    assert result.report.resorted  # input came in time order, not user order


def test_rees46_preset(tmp_path: Path) -> None:
    csv = tmp_path / "2019-Oct.csv"
    csv.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,s1\n"
        "2019-10-01 00:00:01 UTC,view,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,s2\n"
        "2019-10-01 00:00:05 UTC,cart,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,s2\n"
        "2019-10-01 00:01:00 UTC,purchase,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,s2\n"
    )
    ds = load_dataset(csv, preset="rees46")
    feats = compute_features(ds).features.sort("user_id")
    buyer = feats.filter(pl.col("user_id") == 554748717).row(0, named=True)
    assert (buyer["n_views"], buyer["n_carts"], buyer["n_purchases"]) == (1, 1, 1)
    assert buyer["top_category"] == "appliances"
    other = feats.filter(pl.col("user_id") == 541312140).row(0, named=True)
    assert other["top_category"] == "(none)"


def test_unknown_foreign_preset(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(DataValidationError, match="unknown preset"):
        load_dataset(tmp_path / "x.csv", preset="nope")


def test_dirty_dataset_quarantine_matches_the_labels(tmp_path: Path) -> None:
    generate_dataset(SynthConfig(users=4096, products=500, dirty=0.05), tmp_path / "d")
    labels = json.loads((tmp_path / "d" / "manifest.json").read_text())["dirty"]
    ds = load_dataset(tmp_path / "d")
    with pytest.raises(DataValidationError):
        compute_features(ds)
    result = compute_features(ds, on_bad_rows="quarantine", quarantine_dir=tmp_path / "q")
    counts = result.report.counts
    assert result.report.resorted  # the swapped rows were put back in order
    for rule, label in (
        ("unknown_event_type", "unknown_event_types"),
        ("null_price", "missing_prices"),
        ("negative_price", "negative_prices"),
        ("duplicate_event", "duplicated_events"),
    ):
        assert 0.8 * labels[label] <= counts[rule] <= labels[label], rule
    assert result.report.quarantine_path is not None
    assert pl.read_parquet(result.report.quarantine_path).height == sum(counts.values())


def test_unsorted_foreign_input_is_bucketed_on_disk(small_dataset: Path, tmp_path: Path) -> None:
    # Shuffle a generated log, add a non-adjacent duplicate, and compare the bucketed path
    # (forced with a tiny bucket size) with the features of the sorted original.
    events = pl.read_parquet(small_dataset / "events").with_columns(
        pl.col("event_type").cast(pl.String)
    )
    shuffled = pl.concat([events, events.head(1)]).sample(fraction=1.0, shuffle=True, seed=1)
    shuffled.write_parquet(tmp_path / "log.parquet")
    products = pl.read_parquet(small_dataset / "products.parquet")
    reference = compute_features(load_dataset(small_dataset)).features
    ds = load_dataset(tmp_path / "log.parquet")
    ds = dataclasses.replace(ds, products=products.lazy())
    result = compute_features(ds, on_bad_rows="drop", bucket_rows=50_000)
    assert result.report.resorted and result.report.counts == {"duplicate_event": 1}
    assert result.features is not None and reference is not None
    assert result.features.equals(reference)
    assert not list(Path.cwd().glob(".ecomscale-buckets-*"))
