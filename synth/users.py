"""Users, their planted personas, arrivals and category taste, generated per RNG block.

Arrivals: a ``new_users`` share of users first visit inside the window, on a day drawn by the
weekly cycle (so arrivals are uniform over the window up to that cycle) and sign up that day;
the others are returning users who signed up in the two years before the window. Lapsing
personas are always returning users (regulars who stop at their own time).

Taste: each user draws one to three favourite categories from their persona's prior (which
leans to the persona's categories by ``separation``, synth.config.SynthConfig); a share
``taste_focus`` of their category draws picks a favourite (uniformly), the rest follow the
prior. A user's expected taste is the prior, yet most of their views fall in a few categories.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.schema import PERSONAS_SCHEMA, USERS_SCHEMA, arrow_schema
from synth import arrow
from synth.catalogue import STREAM_USERS
from synth.config import CATEGORIES, PERSONAS, RNG_BLOCK_USERS, SynthConfig

COUNTRIES = (
    *(("US", 0.35), ("GB", 0.12), ("DE", 0.12), ("FR", 0.09), ("IN", 0.1)),
    *(("BR", 0.08), ("PL", 0.05), ("JP", 0.05), ("CA", 0.04)),
)
DEVICES = (("mobile", 0.62), ("desktop", 0.33), ("tablet", 0.05))
CHANNELS = (("organic", 0.38), ("paid", 0.25), ("direct", 0.17), ("email", 0.1), ("social", 0.1))
US_PER_DAY = 86_400_000_000
PEAK_WEEKDAY = 6  # Sunday
U16 = 1 << 16  # levels of a 16-bit uniform draw
MAX_FAVOURITES = 3


@dataclass(frozen=True)
class UserDraws:
    """What the event model needs of a block's users."""

    persona: np.ndarray  # (n,) index into PERSONAS
    arrival_day: np.ndarray  # (n,) int64 first active day (0 for returning users)
    new: np.ndarray  # (n,) bool, first visit inside the window
    favourites: np.ndarray  # (n, MAX_FAVOURITES) category codes; the first n_favourites count
    n_favourites: np.ndarray  # (n,) int64 in [1, MAX_FAVOURITES]


def block_bounds(config: SynthConfig, block: int) -> tuple[int, int]:
    """First user_id and user count of RNG block ``block``."""
    first = block * RNG_BLOCK_USERS
    return first, min(RNG_BLOCK_USERS, config.users - first)


def epoch_us(day: dt.date) -> int:
    """Microseconds since the Unix epoch at UTC midnight of ``day``."""
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY


def day_weights(config: SynthConfig) -> np.ndarray:
    """Relative activity of each day of the window (the weekly cycle, peak on Sunday)."""
    weekday = (np.arange(config.days) + config.start.weekday()) % 7
    return 1 + config.weekly_amplitude * np.cos(2 * np.pi * (weekday - PEAK_WEEKDAY) / 7)


def day_cdf(config: SynthConfig) -> np.ndarray:
    """The weekly-cycle CDF over the window's days, from 0 (before day 0) to 1 (after the last)."""
    weights = day_weights(config)
    return np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])


def taste_prior(config: SynthConfig) -> np.ndarray:
    """Array (n_personas, n_categories): each persona's expected category mix."""
    market = np.array([share for _, _, share in CATEGORIES])
    market = market / market.sum()
    prior = np.empty((len(PERSONAS), len(CATEGORIES)))
    for i, name in enumerate(PERSONAS):
        leaning = np.zeros(len(CATEGORIES))
        leaning[list(config.personas[name].leaning)] = 1.0
        leaning /= leaning.sum()
        prior[i] = (1 - config.separation) * market + config.separation * leaning
    return prior


def category_table(config: SynthConfig) -> np.ndarray:
    """Flat intp table: entry ``persona * U16 + u`` is a category drawn from the persona's prior
    by the 16-bit uniform ``u`` (the inverse CDF at the 65,536 cell midpoints)."""
    cdf = np.cumsum(taste_prior(config), axis=1)
    midpoints = (np.arange(U16) + 0.5) / U16
    rows = [np.searchsorted(c, midpoints, side="right") for c in cdf]
    return np.minimum(np.concatenate(rows), len(CATEGORIES) - 1).astype(np.intp)


def _favourites(
    rng: np.random.Generator, prior_table: np.ndarray, persona: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n = persona.size
    u16 = rng.integers(0, U16, size=(n, MAX_FAVOURITES), dtype=np.uint16).astype(np.intp)
    favourites = prior_table[persona[:, None] * U16 + u16]
    return favourites, rng.integers(1, MAX_FAVOURITES + 1, size=n)


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> pa.Array:
    names = [name for name, _ in table]
    weights = np.array([w for _, w in table])
    codes = rng.choice(len(names), size=n, p=weights / weights.sum())
    return arrow.decoded(codes, names)


def users_block(
    config: SynthConfig, block: int, prior_table: np.ndarray
) -> tuple[UserDraws, pa.Table, pa.Table]:
    """The users of one RNG block: draws for the event model, users rows and truth rows.

    ``prior_table`` is ``category_table(config)``, built once by the caller.

    Returns:
        draws: persona, arrival and taste per user.
        users: users.parquet rows.
        truth: truth/personas.parquet rows.
    """
    first, n = block_bounds(config, block)
    rng = np.random.default_rng([config.seed, STREAM_USERS, block])
    shares = np.cumsum([config.personas[p].share for p in PERSONAS])
    persona = np.minimum(np.searchsorted(shares, rng.random(n), side="right"), len(PERSONAS) - 1)
    user_id = arrow.numbers(np.arange(first, first + n, dtype=np.uint32))
    # Returning users signed up in the two years before the window; new ones on arrival.
    signup = epoch_us(config.start) - rng.integers(0, 730 * US_PER_DAY, size=n)
    # Lapsing personas are former regulars: returning users who stop at their own time.
    lapsing = np.array([config.personas[p].mean_active_days is not None for p in PERSONAS])
    new = (rng.random(n) < config.new_users) & ~lapsing[persona]
    arrival_day = np.searchsorted(day_cdf(config)[1:], rng.random(n), side="right")
    arrival_day = np.where(new, np.minimum(arrival_day, config.days - 1), 0)
    signup = np.where(new, epoch_us(config.start) + arrival_day * US_PER_DAY, signup)
    users = pa.table(
        {
            "user_id": user_id,
            "signup_ts": arrow.numbers(signup, pa.timestamp("us", tz="UTC")),
            "country": _pick(rng, COUNTRIES, n),
            "device": _pick(rng, DEVICES, n),
            "channel": _pick(rng, CHANNELS, n),
        },
        schema=arrow_schema(USERS_SCHEMA),
    )
    truth = pa.table(
        {"user_id": user_id, "persona": arrow.decoded(persona, PERSONAS)},
        schema=arrow_schema(PERSONAS_SCHEMA),
    )
    draws = UserDraws(persona, arrival_day, new, *_favourites(rng, prior_table, persona))
    return draws, users, truth
