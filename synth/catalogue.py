"""The product catalogue: categories, brands, lognormal prices and Zipf-like popularity.

Products are laid out by category; inside a category, position ``r`` is the product of
popularity rank ``r``. ``product_at[pos]`` maps a position to a shuffled product_id so
ids carry no information about rank or category.

Collections (a brand line, a set of complementary items) group COLLECTION_SIZE products of
one category at random, whatever their popularity; sessions browse within one
(synth.events), and truth/collections.parquet records them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.schema import COLLECTIONS_SCHEMA, PRODUCTS_SCHEMA, arrow_schema
from synth import arrow
from synth.config import CATEGORIES, SynthConfig

# Stream ids for derived generators: np.random.default_rng([seed, STREAM, block]).
STREAM_PRODUCTS, STREAM_USERS, STREAM_EVENTS, STREAM_DIRTY = range(4)
STREAM_PROCESS, STREAM_EXPERIMENTS = 4, 5

COLLECTION_SIZE = (3, 12)  # products per collection: uniform in this range (inclusive)
# Keys of the price index: category * PRICE_KEY_STEP + price (prices stay far below it).
PRICE_KEY_STEP = 1e7

_SYLLABLES = ("ka", "lo", "mi", "ne", "vo", "ra", "ti", "sun", "zen", "ar", "el", "or", "ix")
PRICE_SIGMA = 0.6


@dataclass(frozen=True)
class Catalogue:
    """Lookup tables the event generator needs (all indexed by position or product_id)."""

    cat_offset: np.ndarray  # (n_categories,) first position of each category
    cat_size: np.ndarray  # (n_categories,) products per category
    product_at: np.ndarray  # (n_products,) position -> product_id
    cheapest_at: np.ndarray  # (n_products,) position -> position of the r-th cheapest
    base_price: np.ndarray  # (n_products,) product_id -> base price (float32)
    table: pa.Table  # products.parquet content, sorted by product_id
    # (n_categories,) float32 log(cat_size + 0.5): exp(u * it) - 1, floored, is a popularity
    # rank in [0, cat_size) (the 0.5 keeps float32 rounding from reaching cat_size)
    log_size: np.ndarray
    collection_of: np.ndarray  # (n_products,) position -> collection
    collection_start: np.ndarray  # (n_collections,) first index into collection_members
    collection_size: np.ndarray  # (n_collections,) products in the collection
    collection_members: np.ndarray  # positions, grouped by collection
    price_key: np.ndarray  # (n_products,) sorted category * PRICE_KEY_STEP + price
    price_key_at: np.ndarray  # (n_products,) the position behind each price_key
    collections: pa.Table  # truth/collections.parquet content, sorted by product_id


def _collections(
    config: SynthConfig, sizes: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Collection of each position, and the positions grouped by collection."""
    rng = np.random.default_rng([config.seed, STREAM_PRODUCTS, 1])
    low, high = COLLECTION_SIZE
    collection_of = np.empty(int(sizes.sum()), dtype=np.int64)
    members, first = [], 0
    for lo, size in zip(offsets, sizes, strict=True):
        shuffled = lo + rng.permutation(size)
        cuts = np.cumsum(rng.integers(low, high + 1, size=size // low + 1))
        cuts = cuts[cuts < size]
        label = np.searchsorted(cuts, np.arange(size), side="right")
        collection_of[shuffled] = first + label
        members.append(shuffled)
        first += cuts.size + 1
    return collection_of, np.concatenate(members)


def _category_sizes(n_products: int) -> np.ndarray:
    shares = np.array([share for _, _, share in CATEGORIES])
    sizes = np.maximum(1, np.floor(shares / shares.sum() * n_products)).astype(np.int64)
    sizes[0] += n_products - sizes.sum()  # the remainder goes to the first category
    return sizes


def _brand_names(rng: np.random.Generator, category: str, n: int) -> list[str]:
    picks = rng.integers(0, len(_SYLLABLES), size=(n, 3))
    return ["".join(_SYLLABLES[i] for i in row).capitalize() for row in picks]


def build_catalogue(config: SynthConfig) -> Catalogue:
    """Build the catalogue for ``config`` (deterministic in config.seed and config.products)."""
    rng = np.random.default_rng([config.seed, STREAM_PRODUCTS, 0])
    n = config.products
    sizes = _category_sizes(n)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    product_at = rng.permutation(n).astype(np.uint32)

    category_idx = np.repeat(np.arange(len(CATEGORIES)), sizes)  # by position
    medians = np.array([median for _, median, _ in CATEGORIES])
    price_at = np.exp(rng.normal(np.log(medians[category_idx]), PRICE_SIGMA)).astype(np.float32)
    price_at = np.maximum(price_at, np.float32(0.5))

    brand_names: list[str] = []
    brand_at = np.empty(n, dtype=np.int64)  # index into brand_names
    cheapest_at = np.empty(n, dtype=np.int64)
    for c, (name, _, _) in enumerate(CATEGORIES):
        lo, hi = offsets[c], offsets[c] + sizes[c]
        n_brands = int(min(sizes[c], 5 + sizes[c] // 200))
        weights = 1.0 / np.arange(1, n_brands + 1)  # Zipf-like brand shares
        picks = rng.choice(n_brands, size=hi - lo, p=weights / weights.sum())
        brand_at[lo:hi] = len(brand_names) + picks
        brand_names += _brand_names(rng, name, n_brands)
        cheapest_at[lo:hi] = lo + np.argsort(price_at[lo:hi], kind="stable")

    by_id = np.argsort(product_at)  # position of each product_id
    base_price = price_at[by_id]
    table = pa.table(
        {
            "product_id": arrow.numbers(np.arange(n, dtype=np.uint32)),
            "category": arrow.decoded(category_idx[by_id], [name for name, _, _ in CATEGORIES]),
            "brand": arrow.decoded(brand_at[by_id], brand_names),
            "base_price": arrow.numbers(base_price),
        },
        schema=arrow_schema(PRODUCTS_SCHEMA),
    )
    log_size = np.log(sizes + 0.5).astype(np.float32)

    collection_of, members = _collections(config, sizes, offsets)
    collection_size = np.bincount(collection_of)
    # members are grouped by collection in collection order (labels rise along them)
    order = np.argsort(collection_of[members], kind="stable")
    members = members[order]
    price_key = category_idx[cheapest_at] * PRICE_KEY_STEP + price_at[cheapest_at]
    collections = pa.table(
        {
            "product_id": arrow.numbers(np.arange(n, dtype=np.uint32)),
            "collection_id": arrow.numbers(collection_of[by_id].astype(np.uint32)),
        },
        schema=arrow_schema(COLLECTIONS_SCHEMA),
    )
    return Catalogue(
        cat_offset=offsets,
        cat_size=sizes,
        product_at=product_at,
        cheapest_at=cheapest_at,
        base_price=base_price,
        table=table,
        log_size=log_size,
        collection_of=collection_of,
        collection_start=np.concatenate([[0], np.cumsum(collection_size)[:-1]]),
        collection_size=collection_size,
        collection_members=members,
        price_key=price_key,
        price_key_at=cheapest_at,
        collections=collections,
    )


def nearest_priced(catalogue: Catalogue, category: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Position of the product of ``category`` whose base price is nearest ``price``."""
    key = category * PRICE_KEY_STEP + price
    right = np.searchsorted(catalogue.price_key, key)
    lo = catalogue.cat_offset[category]
    hi = lo + catalogue.cat_size[category] - 1
    right = np.clip(right, lo, hi)
    left = np.maximum(right - 1, lo)
    nearer_left = key - catalogue.price_key[left] < catalogue.price_key[right] - key
    return catalogue.price_key_at[np.where(nearer_left, left, right)]
