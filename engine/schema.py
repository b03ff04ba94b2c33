"""The dataset contract: column names, dtypes and the event-type Enum, declared once.

synth writes exactly these schemas; the engine validates every input against them.
"""

from __future__ import annotations

import functools
from typing import Literal, get_args

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

# Layout of a dataset folder.
MANIFEST = "manifest.json"
USERS_FILE = "users.parquet"
PRODUCTS_FILE = "products.parquet"
EVENTS_DIR = "events"
PERSONAS_FILE = "truth/personas.parquet"


def arrow_schema(schema: pl.Schema) -> pa.Schema:
    """The Arrow schema Polars writes for ``schema`` (Enum columns keep their categories)."""
    return _arrow_schema(tuple(schema.items()))


@functools.cache
def _arrow_schema(columns: tuple[tuple[str, pl.DataType], ...]) -> pa.Schema:
    return pl.DataFrame(schema=dict(columns)).to_arrow().schema
