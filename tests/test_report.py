"""The report: rendered in a real headless Chromium, and data text escaped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from engine.pipeline import run_pipeline
from synth import SynthConfig, generate_dataset

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVIL = '<script>alert("x")</script>&'


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("ECOMSCALE_REQUIRE_BROWSER"):
        pytest.fail("chromium is required here (ECOMSCALE_REQUIRE_BROWSER is set)")
    pytest.skip("chromium not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    generate_dataset(SynthConfig(users=6000, products=800, seed=11), root / "data")
    # A hostile category and brand name: they must come out escaped.
    products = root / "data" / "products.parquet"
    table = pl.read_parquet(products)
    table = table.with_columns(
        pl.when(pl.col("category") == "books")
        .then(pl.lit(EVIL))
        .otherwise(pl.col("category"))
        .alias("category"),
        pl.when(pl.col("product_id") % 2 == 0)
        .then(pl.lit(EVIL))
        .otherwise(pl.col("brand"))
        .alias("brand"),
    )
    table.write_parquet(products)
    run_pipeline(root / "data", root / "out", seed=0)
    return root / "out"


def test_outputs_written(run_dir: Path) -> None:
    for name in ("features.parquet", "segments.parquet", "report.html"):
        assert (run_dir / name).stat().st_size > 0
    segments = pl.read_parquet(run_dir / "segments.parquet")
    assert segments.columns == ["user_id", "segment", "segment_name"]
    assert segments.height == 6000
    assert (run_dir / "insights" / "funnel.parquet").exists()
    for name in ("retention", "revenue_retention", "lifecycle", "retention_by_segment"):
        assert (run_dir / "cohorts" / f"{name}.parquet").exists(), name
    for name in ("scores.parquet", "scores_by_segment.parquet", "metrics.json"):
        assert (run_dir / "predict" / name).exists(), name
    assert not [p for p in run_dir.rglob("*.tmp")]


def test_data_text_is_escaped(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert '<script>alert("x")' not in page
    assert "&lt;script&gt;" in page


def test_report_is_self_contained(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)


def test_every_chart_renders_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    browser = chromium()
    dom = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            (run_dir / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(0)))
    # sizes, k, profile, categories, funnel, interest, retention, lifecycle, customer value
    # by segment, its backtest, P(alive), personas; conversion scores by segment,
    # calibration, lift, top features
    assert int(attrs["charts-expected"]) == 16
    assert attrs["charts-rendered"] == attrs["charts-expected"]
    assert attrs["script-errors"] == "0"
    assert dom.count('class="main-svg"') >= 16
    assert "How the segments were found" in dom and "Retention by cohort" in dom
