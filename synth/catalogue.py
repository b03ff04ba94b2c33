"""The product catalogue: categories, brands, lognormal prices and Zipf-like popularity.

Products are laid out by category; inside a category, position ``r`` is the product of
popularity rank ``r``. ``product_at[pos]`` maps a position to a shuffled product_id so
ids carry no information about rank or category.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.schema import PRODUCTS_SCHEMA, arrow_schema
from synth import arrow
from synth.config import CATEGORIES, SynthConfig

# Stream ids for derived generators: np.random.default_rng([seed, STREAM, block]).
STREAM_PRODUCTS, STREAM_USERS, STREAM_EVENTS, STREAM_DIRTY = range(4)

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
    return Catalogue(offsets, sizes, product_at, cheapest_at, base_price, table, log_size)
