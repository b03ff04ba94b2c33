"""synth: schema, determinism, atomic writes, bad input, dirty data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exceptions import ConfigError, DatasetIOError
from engine.schema import (
    COLLECTIONS_SCHEMA,
    EVENTS_SCHEMA,
    PERSONAS_SCHEMA,
    PRODUCTS_SCHEMA,
    PURCHASE_PROCESS_SCHEMA,
    USERS_SCHEMA,
)
from synth import PERSONAS, SynthConfig, arrow, from_preset, generate_dataset
from synth.config import ExperimentSpec
from synth.draws import gap_table, grid_searchsorted, u16_threshold
from synth.events import U16, _category_draw, behaviour
from synth.users import UserDraws, category_table, taste_prior
from synth.writer import sha256_file


def test_schema_conformance(small_dataset: Path) -> None:
    events = pl.scan_parquet(small_dataset / "events" / "*.parquet")
    assert events.collect_schema() == EVENTS_SCHEMA
    assert pl.read_parquet_schema(small_dataset / "users.parquet") == dict(USERS_SCHEMA)
    assert pl.read_parquet_schema(small_dataset / "products.parquet") == dict(PRODUCTS_SCHEMA)
    truth = small_dataset / "truth"
    assert pl.read_parquet_schema(truth / "personas.parquet") == dict(PERSONAS_SCHEMA)
    process = truth / "purchase_process.parquet"
    assert pl.read_parquet_schema(process) == dict(PURCHASE_PROCESS_SCHEMA)
    collections = truth / "collections.parquet"
    assert pl.read_parquet_schema(collections) == dict(COLLECTIONS_SCHEMA)
    assert not (truth / "experiments.parquet").exists()  # written only with experiments


def test_events_sorted_across_parts_and_referentially_sound(small_dataset: Path) -> None:
    parts = sorted((small_dataset / "events").glob("part-*.parquet"))
    assert len(parts) == 3  # 20k users / 8192 per part
    events = pl.read_parquet(parts)
    assert events.select(
        (
            (pl.col("user_id").diff() > 0)
            | ((pl.col("user_id").diff() == 0) & (pl.col("ts").diff() >= 0))
        )
        .fill_null(True)
        .all()
    ).item()
    users = pl.read_parquet(small_dataset / "users.parquet")
    products = pl.read_parquet(small_dataset / "products.parquet")
    assert events["user_id"].is_in(users["user_id"].implode()).all()
    assert events["product_id"].is_in(products["product_id"].implode()).all()
    assert users["user_id"].to_list() == list(range(20_000))
    assert events.null_count().sum_horizontal().item() == 0
    assert (events["price"] > 0).all()


def test_manifest_counts_and_hashes(small_dataset: Path) -> None:
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    events = pl.scan_parquet(small_dataset / "events" / "*.parquet")
    assert manifest["counts"]["events"] == events.select(pl.len()).collect().item()
    by_type = dict(events.group_by("event_type").len().collect().iter_rows())
    assert manifest["counts"]["event_types"] == {str(k): v for k, v in by_type.items()}
    for name, digest in manifest["files"].items():
        assert sha256_file(small_dataset / name) == digest
    assert manifest["seed"] == 7 and manifest["schema_version"] == "1.0"


def test_row_groups_are_exact(tmp_path: Path) -> None:
    config = SynthConfig(users=8192, products=500, row_group_rows=10_000, part_users=8192)
    generate_dataset(config, tmp_path / "d")
    meta = pq.ParquetFile(tmp_path / "d" / "events" / "part-00000.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert all(s == 10_000 for s in sizes[:-1]) and 0 < sizes[-1] <= 10_000
    assert meta.row_group(0).column(0).compression == "ZSTD"


def _all_bytes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_deterministic_across_workers_and_block_sizes(tmp_path: Path) -> None:
    experiments = (ExperimentSpec("checkout", 0.2), ExperimentSpec("aa", 0.0, 0.3, 20))
    base = dict(
        users=12_000,
        products=800,
        seed=3,
        part_users=4096,
        row_group_rows=20_000,
        days=60,
        experiments=experiments,
    )
    generate_dataset(SynthConfig(**base, block_users=4096), tmp_path / "a", workers=1)
    generate_dataset(SynthConfig(**base, block_users=8192), tmp_path / "b", workers=2)
    a, b = _all_bytes(tmp_path / "a"), _all_bytes(tmp_path / "b")
    a.pop("manifest.json"), b.pop("manifest.json")  # records block_users itself
    assert a == b


def test_part_size_changes_files_not_rows(tmp_path: Path) -> None:
    base = dict(users=9_000, products=800, seed=5, experiments=(ExperimentSpec("x", 0.1),))
    generate_dataset(SynthConfig(**base, part_users=4096), tmp_path / "a")
    generate_dataset(SynthConfig(**base, part_users=8192), tmp_path / "b")
    truths = ("personas", "purchase_process", "experiments", "collections")
    for name in ("events", *(f"truth/{truth}.parquet" for truth in truths)):
        a = pl.read_parquet(tmp_path / "a" / name)
        b = pl.read_parquet(tmp_path / "b" / name)
        assert a.equals(b)


def test_seed_changes_output(tmp_path: Path) -> None:
    generate_dataset(SynthConfig(users=2000, products=500, seed=1), tmp_path / "a")
    generate_dataset(SynthConfig(users=2000, products=500, seed=2), tmp_path / "b")
    a = pl.read_parquet(tmp_path / "a" / "events")
    b = pl.read_parquet(tmp_path / "b" / "events")
    assert not a.equals(b)


def test_existing_dataset_needs_overwrite(tmp_path: Path) -> None:
    config = SynthConfig(users=1000, products=200)
    generate_dataset(config, tmp_path / "d")
    before = _all_bytes(tmp_path / "d")
    with pytest.raises(DatasetIOError, match="--overwrite"):
        generate_dataset(config, tmp_path / "d")
    assert _all_bytes(tmp_path / "d") == before
    generate_dataset(SynthConfig(users=1000, products=200, seed=9), tmp_path / "d", overwrite=True)
    assert _all_bytes(tmp_path / "d") != before
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no staging folders left


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import synth.dataset as dataset

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "write_table", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(SynthConfig(users=1000, products=200), tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": -5}, "users must be >= 1"),
        ({"days": 0}, "days must be >= 1"),
        ({"dirty": 0.9}, "dirty must be in"),
        ({"separation": 1.5}, "separation must be in"),
        ({"block_users": 1000}, "block_users must be a positive multiple"),
        ({"products": 3}, "products must be >="),
    ],
)
def test_bad_config(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_preset_and_unwritable_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        from_preset("nope")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatasetIOError, match="cannot write"):
        generate_dataset(SynthConfig(users=100, products=100), blocker / "sub" / "d")


def test_presets_are_valid() -> None:
    for name in ("default", "tiny", "large", "rees46", "retailrocket"):
        assert from_preset(name).users >= 1


def test_dirty_data_is_labelled(tmp_path: Path) -> None:
    generate_dataset(SynthConfig(users=5000, products=500, dirty=0.05), tmp_path / "d")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    dirty = manifest["dirty"]
    events = pl.read_parquet(tmp_path / "d" / "events")
    products = pl.read_parquet(tmp_path / "d" / "products.parquet")
    assert events["event_type"].cast(pl.String).eq("wishlist").sum() == dirty["unknown_event_types"]
    assert events["price"].null_count() == dirty["missing_prices"]
    assert (events["price"] < 0).sum() == dirty["negative_prices"]
    assert products["category"].null_count() == dirty["missing_categories"]
    assert products["brand"].null_count() == dirty["missing_brands"]
    for kind in ("duplicated_events", "out_of_order_rows", "negative_prices"):
        assert dirty[kind] > 0
    assert manifest["counts"]["events"] == events.height


def test_personas_cover_users(small_dataset: Path) -> None:
    truth = pl.read_parquet(small_dataset / "truth" / "personas.parquet")
    assert truth.height == 20_000
    assert set(truth["persona"]) == set(PERSONAS)


@given(
    edges=st.lists(st.floats(0.0, 6.0), min_size=1, max_size=80).map(sorted),
    queries=st.lists(st.floats(0.0, 6.0, exclude_max=True), min_size=1, max_size=200),
    cells=st.sampled_from([1, 7, 64, 4096]),
)
@settings(max_examples=200, deadline=None)
def test_grid_searchsorted_equals_searchsorted(
    edges: list[float], queries: list[float], cells: int
) -> None:
    edges_arr, q = np.array(edges), np.array(queries)
    # Queries on and next to the edges: where rounding could pick the wrong grid cell.
    q = np.concatenate([q, edges_arr, np.nextafter(edges_arr, 0.0), np.nextafter(edges_arr, 6.0)])
    q = q[(q >= 0.0) & (q < 6.0)]
    lookup = grid_searchsorted(edges_arr, 0.0, 6.0, cells)
    np.testing.assert_array_equal(lookup(q), np.searchsorted(edges_arr, q, side="right"))


def test_inverse_cdf_tables_draw_their_distributions() -> None:
    from scipy.stats import lognorm  # an independent reference for the gap quantiles

    config = SynthConfig(users=1_000, seed=1, separation=0.6, gap_median_s=45.0)
    # Categories: the persona's prior table hits category c in prior[p, c] of its 65,536
    # cells (to one cell at each CDF edge); a user's draws give taste_focus to their
    # favourites, evenly, and the rest to the prior.
    prior = taste_prior(config)
    table = category_table(config).reshape(len(PERSONAS), U16)
    for p in range(len(PERSONAS)):
        share = np.bincount(table[p], minlength=prior.shape[1]) / U16
        np.testing.assert_allclose(share, prior[p], atol=1.01 / U16)
    model = behaviour(config)
    users = UserDraws(
        persona=np.array([2]),
        arrival_day=np.zeros(1, np.int64),
        new=np.zeros(1, bool),
        favourites=np.array([[7, 3, 5]]),
        n_favourites=np.array([2]),
    )
    grid = np.arange(U16)
    focus_u16, prior_u16 = np.meshgrid(grid[::16], grid[::16])  # every 16th pair of draws
    drawn = _category_draw(
        model, users, np.zeros(focus_u16.size, np.intp), np.full(focus_u16.size, 2),
        focus_u16.ravel(), prior_u16.ravel(),
    )  # fmt: skip
    expected = 0.4 * prior[2]
    expected[[7, 3]] += 0.3
    share = np.bincount(drawn, minlength=prior.shape[1]) / drawn.size
    np.testing.assert_allclose(share, expected, atol=5e-4)
    # Gaps: the lognormal's quantiles at the cell midpoints, capped to [1 s, 29 min].
    q = (np.arange(U16) + 0.5) / U16
    expected = np.clip(lognorm.ppf(q, s=1.3, scale=45.0), 1.0, 29 * 60.0)
    np.testing.assert_allclose(gap_table(config) / 1e6, expected, rtol=1e-9, atol=1e-6)
    # Bernoulli trials: u < threshold for exactly round(p * 65,536) of the 65,536 values.
    u = np.arange(U16)
    for prob in (0.0, 0.05, 0.7, 1.0):
        assert (u < u16_threshold(prob)).sum() == round(prob * U16)


def test_arrow_helpers_equal_pa_array() -> None:
    values = np.array([3.5, -1.0, 0.0, 2.25, 9.0, 1.0, 7.0, 8.0, 6.0], dtype=np.float32)
    null = np.array([False, True, False, False, True, False, False, False, True])
    assert arrow.numbers(values, null=null).equals(pa.array(values, mask=null))
    ts = np.array([0, 1_700_000_000_000_000], dtype=np.int64)
    utc = pa.timestamp("us", tz="UTC")
    assert arrow.numbers(ts, utc).equals(pa.array(ts, utc))
    names = ["beauty", "", "größe & <b>", "x"]
    codes = np.array([2, 0, 0, 3, 1], dtype=np.int64)
    expected = pa.array([names[c] for c in codes], pa.large_string())
    assert arrow.strings(names).equals(pa.array(names, pa.large_string()))
    assert arrow.decoded(codes, names).equals(expected)


def test_a_generator_worker_does_not_import_pandas(tmp_path: Path) -> None:
    # pa.array() imports pandas on first use: ~0.2 s in every worker process.
    code = (
        "import sys\nfrom pathlib import Path\nfrom synth import SynthConfig\n"
        "from synth.dataset import _generate_part\n"
        f"_generate_part(SynthConfig(users=5_000, seed=1, dirty=0.0), 0, Path({str(tmp_path)!r}))\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
