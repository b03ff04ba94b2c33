"""The dataset contract: column names, dtypes and the event-type Enum, declared once.

synth writes exactly these schemas; the engine validates every input against them.
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

import numpy as np
import polars as pl
import pyarrow as pa

SCHEMA_VERSION = "1.0"

EventType = Literal["view", "add_to_cart", "remove_from_cart", "purchase"]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
EVENT_TYPE = pl.Enum(list(EVENT_TYPES))
# Integer codes of the Enum, in declaration order (the physical codes Polars stores).
VIEW, ADD_TO_CART, REMOVE_FROM_CART, PURCHASE = range(len(EVENT_TYPES))

TS = pl.Datetime("us", "UTC")

EVENTS_SCHEMA = pl.Schema(
    {
        "user_id": pl.UInt32(),
        "ts": TS,
        "event_type": EVENT_TYPE,
        "product_id": pl.UInt32(),
        "price": pl.Float32(),
    }
)
# session_id is optional on input (derived when absent).
OPTIONAL_EVENT_COLUMNS = pl.Schema({"session_id": pl.UInt64})

USERS_SCHEMA = pl.Schema(
    {
        "user_id": pl.UInt32(),
        "signup_ts": TS,
        "country": pl.String(),
        "device": pl.String(),
        "channel": pl.String(),
    }
)

PRODUCTS_SCHEMA = pl.Schema(
    {
        "product_id": pl.UInt32,
        "category": pl.String,
        "brand": pl.String,
        "base_price": pl.Float32,
    }
)

PERSONAS_SCHEMA = pl.Schema({"user_id": pl.UInt32, "persona": pl.String})

# Planted truths of a generated dataset (synth); never an input to any analysis.
# Per user: the latent purchase process (rate per day, dropout probability after each repeat
# purchase, mean spend per order), when the user arrived (null for returning users) and became
# inactive (null if active at the window's end), and the purchases expected in the 30 days
# after the window under the truth.
PURCHASE_PROCESS_SCHEMA = pl.Schema(
    {
        "user_id": pl.UInt32(),
        "arrived_ts": TS,
        "purchase_rate": pl.Float64(),
        "dropout": pl.Float64(),
        "mean_spend": pl.Float64(),
        "inactive_ts": TS,
        "expected_purchases_30d": pl.Float64(),
    }
)
COLLECTIONS_SCHEMA = pl.Schema({"product_id": pl.UInt32(), "collection_id": pl.UInt32()})
EXPERIMENTS_SCHEMA = pl.Schema(
    {
        "user_id": pl.UInt32(),
        "experiment": pl.String(),
        "variant": pl.String(),
        "assigned_ts": TS,
    }
)

# Layout of a dataset folder.
MANIFEST = "manifest.json"
USERS_FILE = "users.parquet"
PRODUCTS_FILE = "products.parquet"
EVENTS_DIR = "events"
PERSONAS_FILE = "truth/personas.parquet"
PURCHASE_PROCESS_FILE = "truth/purchase_process.parquet"
COLLECTIONS_FILE = "truth/collections.parquet"
EXPERIMENTS_FILE = "truth/experiments.parquet"
# Written by ingest: dense user_id / product_id -> the source's own key (integer or string).
USER_KEYS_FILE = "keys/users.parquet"
PRODUCT_KEYS_FILE = "keys/products.parquet"
# Bucketed layout (for Dask): events/bucket=NNNNN/part-PPPPP.parquet, each folder sorted by
# (user_id, ts) across its files in name order; the manifest says {"layout": {"buckets": N}}.
BUCKET_DIR = "bucket={:05d}"
MAX_BUCKETS = 65_536

# The stable user hash: Fibonacci hashing, h = (user_id * 0x9E3779B1) mod 2^32. The multiplier
# is odd, so h is a bijection on u32 ids (no ties); it is plain integer arithmetic, so it does
# not change between Polars, NumPy or DuckDB versions. A user's bucket is the top bits of h,
# bucket = h * n_buckets // 2^32, so ordering users by h is ordering them by (bucket, h)
# whatever the number of buckets: the K-Means row order does not depend on the partitioning.
HASH_MULTIPLIER = 0x9E3779B1
_HASH_SPACE = 1 << 32
_INVERSE_MULTIPLIER = pow(HASH_MULTIPLIER, -1, _HASH_SPACE)


def user_hash(user_id: pl.Expr) -> pl.Expr:
    """The stable user hash of a u32 id column (UInt64 values below 2^32)."""
    return (user_id.cast(pl.UInt64) * HASH_MULTIPLIER) % _HASH_SPACE


def user_bucket(user_id: pl.Expr, n_buckets: int) -> pl.Expr:
    """The bucket (0..n_buckets-1, UInt32) of every user id, from the stable hash."""
    return (user_hash(user_id) * n_buckets // _HASH_SPACE).cast(pl.UInt32)


def ids_of_bucket(bucket: int, n_buckets: int, count: int) -> np.ndarray:
    """``count`` distinct u32 ids whose bucket is ``bucket``, in hash order: the hash is a
    bijection, so the ids are the inverse hash of the first values of the bucket's range."""
    low = -(-bucket * _HASH_SPACE // n_buckets)
    high = -(-(bucket + 1) * _HASH_SPACE // n_buckets)
    if count > high - low:
        raise ValueError(f"bucket {bucket} of {n_buckets} holds at most {high - low} ids")
    hashes = np.arange(low, low + count, dtype=np.uint64)
    return ((hashes * np.uint64(_INVERSE_MULTIPLIER)) % np.uint64(_HASH_SPACE)).astype(np.uint32)


def user_bucket_np(user_id: np.ndarray, n_buckets: int) -> np.ndarray:
    """NumPy twin of ``user_bucket`` (used by the generator), uint32."""
    h = (user_id.astype(np.uint64) * np.uint64(HASH_MULTIPLIER)) % np.uint64(_HASH_SPACE)
    return (h * np.uint64(n_buckets) // np.uint64(_HASH_SPACE)).astype(np.uint32)


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    """The Arrow schema Polars writes for ``schema`` (Enum columns keep their categories)."""
    return _arrow_schema(tuple(schema.items()))


@functools.cache
def _arrow_schema(columns: tuple[tuple[str, pl.DataType], ...]) -> pa.Schema:
    return pl.DataFrame(schema=dict(columns)).to_arrow().schema
