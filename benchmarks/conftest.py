"""Benchmark profiles, session-scoped data from synth at fixed seeds, and peer helpers.

ECOMSCALE_BENCH=ci (default) runs in a few minutes; ECOMSCALE_BENCH=full runs the large
profile. Every comparison is a ratio measured in the same run; the guards are
set well below the ratios measured here (see each module) so that noise does not trip them.
ECOMSCALE_BENCH_SLOWDOWN=<stage> injects a deliberate slowdown into our side of that stage
(used by tests/test_benchmark_guards.py to prove the guards fail).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from synth import SynthConfig, generate_dataset


@dataclass(frozen=True)
class Profile:
    name: str
    users: int  # generated dataset for generation/features/pipeline
    pandas_users: int  # pandas gets a subset (it would not finish on the full data)
    kmeans_sizes: tuple[int, ...]
    kmeans_seeds: tuple[int, ...]
    rounds: int
    segment_sizes: tuple[int, ...] = (100_000,)  # users of the persona-recovery datasets


PROFILES = {
    "smoke": Profile("smoke", 20_000, 5_000, (100_000,), (0,), 1, (20_000,)),
    "ci": Profile("ci", 131_072, 30_000, (1_000_000,), (0, 1), 3),
    "full": Profile(
        "full", 1_000_000, 150_000, (1_000_000, 5_000_000), (0, 1, 2), 3, (100_000, 1_000_000)
    ),
}


@pytest.fixture(scope="session")
def profile() -> Profile:
    name = os.environ.get("ECOMSCALE_BENCH", "ci")
    if name not in PROFILES:
        raise pytest.UsageError(f"ECOMSCALE_BENCH must be one of {sorted(PROFILES)}")
    return PROFILES[name]


def slowdown(stage: str) -> bool:
    return os.environ.get("ECOMSCALE_BENCH_SLOWDOWN") == stage


@pytest.fixture(scope="session")
def dataset(profile: Profile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / f"data-{profile.name}"
    generate_dataset(SynthConfig(users=profile.users, seed=2024), out, workers=os.cpu_count() or 1)
    return out


def best_of(fn: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Fastest wall time of ``rounds`` calls (after one warm-up call) and the last result."""
    result = fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def child_peak_rss_mb(code: str) -> float:
    """Run Python ``code`` (ending with ``self_peak_rss_snippet``) fresh; its peak RSS in MB."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def self_peak_rss_snippet() -> str:
    """Prints the process's own peak RSS (synth.dataset.peak_rss_mb: VmHWM, which, unlike
    ru_maxrss, does not include the benchmark process the child was forked from)."""
    return "from synth.dataset import peak_rss_mb; print(peak_rss_mb())"
