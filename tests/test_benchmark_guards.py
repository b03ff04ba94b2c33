"""The benchmark guards catch a real slowdown: inject one, and the guard must fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_guard(slowdown: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ECOMSCALE_BENCH": "smoke"}
    env.pop("ECOMSCALE_BENCH_SLOWDOWN", None)
    if slowdown:
        env["ECOMSCALE_BENCH_SLOWDOWN"] = slowdown
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "benchmarks/test_bench_features.py::test_features_vs_peers",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-disable-gc",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_injected_slowdown_fails_the_features_guard() -> None:
    normal = run_guard(None)
    assert normal.returncode == 0, normal.stdout[-2000:]
    slowed = run_guard("features")
    assert slowed.returncode != 0
    assert "GUARD_VS_" in slowed.stdout  # failed on a ratio guard, not on an error
