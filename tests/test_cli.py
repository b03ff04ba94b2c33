"""The command line: the whole chain, one-line errors, help texts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli import main
from synth import SynthConfig, generate_dataset


def ecomscale(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["generate", "--users", "-5", "--out", "x"], "users must be >= 1"),
        (["generate", "--preset", "nope", "--out", "x"], "unknown preset 'nope'"),
        (["generate", "--dirty", "2", "--out", "x"], "dirty must be in"),
        (["features", "/no/such/data"], "no such file or folder"),
        (["run", "/no/such/data"], "no such file or folder"),
    ],
)
def test_bad_input_is_one_line(args: list[str], needle: str) -> None:
    proc = ecomscale(*args)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = ecomscale("generate", "--users", "100", "--out", str(blocker / "d"))
    assert proc.returncode == 2 and "cannot write" in proc.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["features", "DATA", "--out", "BLOCK/f.parquet"],
        ["features", "DATA", "--on-bad-rows", "quarantine", "--quarantine", "BLOCK/q"],
        ["segment", "FEATURES", "--out", "BLOCK/s.parquet"],
        ["report", "DATA", "--features", "FEATURES", "--segments", "FEATURES", "--out", "BLOCK/r"],
        ["run", "DATA", "--out", "BLOCK/r"],
        ["partition", "DATA", "--buckets", "2", "--out", "BLOCK/p"],
    ],
    ids=lambda c: " ".join(c[:3]),
)
def test_an_output_path_that_cannot_be_written_fails_before_any_work(
    command: list[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    features = tmp_path / "features.parquet"
    pl.DataFrame({"user_id": [1]}).write_parquet(features)
    places = {"BLOCK": str(blocker), "DATA": "/no/such/data", "FEATURES": str(features)}
    args = []
    for arg in command:
        for placeholder, path in places.items():
            arg = arg.replace(placeholder, path)
        args.append(arg)
    proc = ecomscale(*args)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"cannot write to {blocker}" in proc.stderr and "is a file" in proc.stderr


def test_help_texts() -> None:
    runner = CliRunner()
    for command in (
        "generate",
        "features",
        "segment",
        "report",
        "run",
        "partition",
        "clv",
        "cohorts",
        "predict",
    ):
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_chain_generate_features_segment_report(tmp_path: Path) -> None:
    runner = CliRunner()
    data, feats, segs = tmp_path / "data", tmp_path / "f.parquet", tmp_path / "s.parquet"
    result = runner.invoke(
        main, ["generate", "--preset", "tiny", "--out", str(data), "--workers", "1"]
    )
    assert result.exit_code == 0, result.output
    again = runner.invoke(main, ["generate", "--preset", "tiny", "--out", str(data)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    result = runner.invoke(main, ["features", str(data), "--out", str(feats)])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(feats).height == 5000
    result = runner.invoke(main, ["segment", str(feats), "--out", str(segs), "--k", "4"])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(segs)["segment"].n_unique() == 4
    result = runner.invoke(
        main,
        [
            "report",
            str(data),
            "--features",
            str(feats),
            "--segments",
            str(segs),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "report.html").exists()


def test_run_without_data_generates_the_default_dataset(tmp_path: Path) -> None:
    proc = ecomscale("run", "--users", "4000", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    for name in ("data/manifest.json", "features.parquet", "segments.parquet", "report.html"):
        assert (tmp_path / "out" / name).exists(), name
    assert "ARI" in proc.stderr


def test_run_on_dirty_data_needs_a_policy(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "dirty"
    runner.invoke(main, ["generate", "--preset", "tiny", "--dirty", "0.02", "--out", str(data)])
    proc = ecomscale("run", str(data), "--out", str(tmp_path / "o1"))
    assert proc.returncode == 2 and "Hint:" in proc.stderr
    proc = ecomscale(
        "run", str(data), "--out", str(tmp_path / "o2"), "--on-bad-rows", "quarantine", "--k", "3"
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o2" / "quarantine" / "quarantine.parquet").exists()


def test_report_names_a_missing_feature_or_segment_column(tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate_dataset(SynthConfig(users=300, seed=1), data)
    feats, segs = tmp_path / "f.parquet", tmp_path / "s.parquet"
    pl.DataFrame({"user_id": pl.Series([1], dtype=pl.UInt32), "n_events": [3]}).write_parquet(feats)
    pl.DataFrame({"user_id": [1], "segment": [0]}).write_parquet(segs)
    proc = ecomscale(
        "report", str(data), "--features", str(feats), "--segments", str(segs), "--out", "r"
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert f"{feats}: no column n_purchases, revenue, top_category" in proc.stderr
    pl.DataFrame(
        {
            "user_id": pl.Series([1], dtype=pl.UInt32),
            "n_events": [3],
            "n_purchases": [0],
            "revenue": [0.0],
            "top_category": ["books"],
        }
    ).write_parquet(feats)
    proc = ecomscale(
        "report", str(data), "--features", str(feats), "--segments", str(segs), "--out", "r"
    )
    assert proc.returncode == 2 and f"{segs}: no column segment_name" in proc.stderr


def test_segment_names_a_missing_feature_column(tmp_path: Path) -> None:
    feats = tmp_path / "f.parquet"
    pl.DataFrame({"n_events": [3, 4]}).write_parquet(feats)
    proc = ecomscale("segment", str(feats), "--out", str(tmp_path / "s.parquet"))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert f"{feats}: no column user_id, n_sessions" in proc.stderr


def test_generate_plants_experiments_from_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    args = ["generate", "--preset", "tiny", "--out", str(data), "--workers", "1"]
    bad = runner.invoke(main, [*args, "--experiment", "checkout=0.1"])
    assert bad.exit_code == 2 and "NAME:LIFT[:SPLIT[:START_DAY]]" in bad.output
    assert bad.output.strip().count("\n") == 0 and not data.exists()
    result = runner.invoke(
        main, [*args, "--experiment", "checkout:0.2", "--experiment", "aa:0:0.3:7"]
    )
    assert result.exit_code == 0, result.output
    assigned = pl.read_parquet(data / "truth" / "experiments.parquet")
    assert set(assigned["experiment"]) == {"checkout", "aa"}
    manifest = json.loads((data / "manifest.json").read_text())
    assert [e["split"] for e in manifest["experiments"]] == [0.5, 0.3]
