"""Shared fixtures: small generated datasets (session-scoped, fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synth import SynthConfig, generate_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~20k users, several parts (part_users=8192), clean."""
    out = tmp_path_factory.mktemp("data") / "small"
    generate_dataset(SynthConfig(users=20_000, seed=7, products=3_000, part_users=8192), out)
    return out


@pytest.fixture(scope="session")
def realism_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default config at 40k users: enough events for the statistical checks."""
    out = tmp_path_factory.mktemp("data") / "realism"
    generate_dataset(SynthConfig(users=40_000), out, workers=2)
    return out
