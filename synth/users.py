"""Users and their planted personas, generated per RNG block of users."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from engine.schema import PERSONAS_SCHEMA, USERS_SCHEMA, arrow_schema
from synth import arrow
from synth.catalogue import STREAM_USERS
from synth.config import PERSONAS, RNG_BLOCK_USERS, SynthConfig

COUNTRIES = (
    *(("US", 0.35), ("GB", 0.12), ("DE", 0.12), ("FR", 0.09), ("IN", 0.1)),
    *(("BR", 0.08), ("PL", 0.05), ("JP", 0.05), ("CA", 0.04)),
)
DEVICES = (("mobile", 0.62), ("desktop", 0.33), ("tablet", 0.05))
CHANNELS = (("organic", 0.38), ("paid", 0.25), ("direct", 0.17), ("email", 0.1), ("social", 0.1))
US_PER_DAY = 86_400_000_000


def block_bounds(config: SynthConfig, block: int) -> tuple[int, int]:
    """First user_id and user count of RNG block ``block``."""
    first = block * RNG_BLOCK_USERS
    return first, min(RNG_BLOCK_USERS, config.users - first)


def epoch_us(day: dt.date) -> int:
    """Microseconds since the Unix epoch at UTC midnight of ``day``."""
    return (day - dt.date(1970, 1, 1)).days * US_PER_DAY


def _pick(rng: np.random.Generator, table: tuple[tuple[str, float], ...], n: int) -> pa.Array:
    names = [name for name, _ in table]
    weights = np.array([w for _, w in table])
    codes = rng.choice(len(names), size=n, p=weights / weights.sum())
    return arrow.decoded(codes, names)


def users_block(config: SynthConfig, block: int) -> tuple[np.ndarray, pa.Table, pa.Table]:
    """Persona codes, users rows and truth rows for one RNG block.

    Returns:
        persona: array of shape (n_users,), index into PERSONAS.
        users: users.parquet rows.
        truth: truth/personas.parquet rows.
    """
    first, n = block_bounds(config, block)
    rng = np.random.default_rng([config.seed, STREAM_USERS, block])
    shares = np.cumsum([config.personas[p].share for p in PERSONAS])
    persona = np.minimum(np.searchsorted(shares, rng.random(n), side="right"), len(PERSONAS) - 1)
    user_id = arrow.numbers(np.arange(first, first + n, dtype=np.uint32))
    # Sign-up happens up to two years before the window starts.
    signup = epoch_us(config.start) - rng.integers(0, 730 * US_PER_DAY, size=n)
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
    return persona, users, truth
