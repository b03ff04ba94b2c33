"""Fast random draws for the event model: 16-bit uniforms and inverse-CDF tables.

Per-event draws are the cost of generation, so the per-event ones use 16-bit uniforms
(half the cost of float32 ones): Bernoulli trials compare them with a threshold, and
categories and in-session gaps are read from 65,536-entry inverse-CDF tables (a standard
normal draw costs several uniform ones). Each probability is then exact to 1/65,536.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable

import numpy as np

from synth.config import SynthConfig
from synth.users import U16

US_PER_S = 1_000_000
MAX_GAP_S = 29 * 60.0
PEAK_HOUR = 20
GAP_SIGMA = 1.3  # log-scale spread of in-session gaps


def hour_cdf(config: SynthConfig) -> np.ndarray:
    ratio = config.diurnal_peak_to_trough
    amplitude = (ratio - 1) / (ratio + 1)
    weights = 1 + amplitude * np.cos(2 * np.pi * (np.arange(24) - PEAK_HOUR) / 24)
    return np.cumsum(weights) / weights.sum()


def uniform32(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n, dtype=np.float32)


def bits16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of a uniform integer in [0, U16), as uint16 (for Bernoulli trials)."""
    return rng.integers(0, U16, size=n, dtype=np.uint16)


def uniform16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of a uniform integer in [0, U16), as intp (ready to index a table)."""
    return rng.integers(0, U16, size=n, dtype=np.uint16).astype(np.intp)


def u16_threshold(prob: np.ndarray | float) -> np.ndarray:
    """``u < threshold`` for a 16-bit uniform ``u`` holds with probability ``prob``
    (to 1/65,536)."""
    return np.rint(np.asarray(prob) * U16).astype(np.int32)


def cell_midpoints() -> np.ndarray:
    """Probabilities at the middle of the 65,536 cells of a 16-bit uniform: an inverse CDF
    evaluated there is a table that turns a 16-bit uniform into the distribution's draw."""
    return (np.arange(U16) + 0.5) / U16


@functools.cache
def normal_quantiles() -> np.ndarray:
    """Standard normal quantiles at the cell midpoints (once per process: 65,536 calls of
    the stdlib's inv_cdf, halved by symmetry)."""
    lower = cell_midpoints()[: U16 // 2].tolist()
    z = np.array([statistics.NormalDist().inv_cdf(q) for q in lower])
    return np.concatenate([z, -z[::-1]])


def gap_table(config: SynthConfig) -> np.ndarray:
    """In-session gaps in microseconds (int64): lognormal quantiles, capped below the timeout."""
    gap_s = np.exp(np.log(config.gap_median_s) + GAP_SIGMA * normal_quantiles())
    return (np.clip(gap_s, 1.0, MAX_GAP_S) * US_PER_S).astype(np.int64)


def grid_searchsorted(
    edges: np.ndarray, lo: float, hi: float, cells: int = 4096
) -> Callable[[np.ndarray], np.ndarray]:
    """``np.searchsorted(edges, q, side="right")`` for q in [lo, hi), exactly, but faster.

    A grid of ``cells`` cells over [lo, hi) knows the answer at every grid point; a query
    whose neighbouring cells agree takes it from there (two gathers, no branchy binary
    search), and only queries near an edge (a few percent) fall back to searchsorted.
    """
    grid = lo + (hi - lo) * np.arange(-1, cells + 3) / cells  # one spare cell each side
    at = np.searchsorted(edges, grid, side="right")
    scale = cells / (hi - lo)

    def lookup(q: np.ndarray) -> np.ndarray:
        cell = np.clip(((q - lo) * scale).astype(np.int64), 0, cells - 1)
        # q lies in grid cell [cell, cell + 1] up to rounding; [cell - 1, cell + 2] is safe.
        below, above = at[cell], at[cell + 3]
        out = below.copy()
        unsure = np.flatnonzero(below != above)
        out[unsure] = np.searchsorted(edges, q[unsure], side="right")
        return out

    return lookup
