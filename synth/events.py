"""The behaviour model: sessions, event sequences, products and prices for one user block.

Everything is vectorised over the block (assumes a validated config). The model:

* sessions per user: 1 + Poisson(persona rate x days/30 x lognormal activity), so activity
  is heavy-tailed;
* session start: weekday-weighted day (lapsed users only early in the window), hour from a
  diurnal cycle with the configured peak-to-trough ratio; sessions of a user are pushed apart
  so that more than 30 minutes separate them (the session timeout holds);
* session length: discretised lognormal (median ~2, mean ~4); gaps inside a session:
  lognormal with the configured median, capped below the timeout;
* a session ends in a purchase with the persona's probability: its tail is
  [view p1, cart p1, ..., view pm, cart pm, purchase p1, ..., purchase pm];
* other views turn into add_to_cart of the product just viewed with the persona's
  browse-cart probability, and a cart is often followed by its remove_from_cart;
* categories: mostly the session's category, drawn from the persona's taste; product rank
  inside a category is log-uniform (Zipf slope -1); bargain hunters favour the cheapest.

Per-event draws are the cost of generation, so the per-event ones use 16-bit uniforms
(half the cost of float32 ones): Bernoulli trials compare them with a threshold, and
categories and in-session gaps are read from 65,536-entry inverse-CDF tables (a standard
normal draw costs several uniform ones). Each probability is then exact to 1/65,536.
"""

from __future__ import annotations

import datetime as dt
import functools
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.schema import ADD_TO_CART, PURCHASE, REMOVE_FROM_CART, VIEW
from synth.catalogue import STREAM_EVENTS, Catalogue
from synth.config import CATEGORIES, PERSONAS, SynthConfig
from synth.users import US_PER_DAY, epoch_us

US_PER_S = 1_000_000
SESSION_TIMEOUT_US = 30 * 60 * US_PER_S
MAX_GAP_S = 29 * 60.0
REMOVE_AFTER_CART_PROB = 0.75
SESSION_CATEGORY_STICKINESS = 0.7
PEAK_HOUR = 20
PEAK_WEEKDAY = 6  # Sunday
GAP_SIGMA = 1.3  # log-scale spread of in-session gaps
U16 = 1 << 16  # levels of a 16-bit uniform draw


def _persona_arrays(config: SynthConfig) -> dict[str, np.ndarray]:
    specs = [config.personas[p] for p in PERSONAS]
    return {
        "sessions": np.array([s.sessions for s in specs]) * config.days / 30.0,
        "len_median": np.array([s.session_len_median for s in specs]),
        "buy_prob": np.array([s.purchase_session_prob for s in specs]),
        "cart_u16": _u16_threshold(np.array([s.browse_cart_prob for s in specs])),
        "active": np.array([s.active_fraction for s in specs]),
        "one_purchase": np.array([s.exactly_one_purchase for s in specs]),
        "bargain": np.array([s.bargain for s in specs]),
    }


def category_taste(config: SynthConfig) -> np.ndarray:
    """Array of shape (n_personas, n_categories): each persona's category distribution."""
    market = np.array([share for _, _, share in CATEGORIES])
    market = market / market.sum()
    taste = np.empty((len(PERSONAS), len(CATEGORIES)))
    for i, name in enumerate(PERSONAS):
        favourite = np.zeros(len(CATEGORIES))
        favourite[list(config.personas[name].favourite_categories)] = 1.0
        favourite /= favourite.sum()
        taste[i] = (1 - config.separation) * market + config.separation * favourite
    return taste


def _day_cdf(config: SynthConfig) -> np.ndarray:
    weekday = (np.arange(config.days) + config.start.weekday()) % 7
    weights = 1 + config.weekly_amplitude * np.cos(2 * np.pi * (weekday - PEAK_WEEKDAY) / 7)
    return np.cumsum(weights) / weights.sum()


def _hour_cdf(config: SynthConfig) -> np.ndarray:
    ratio = config.diurnal_peak_to_trough
    amplitude = (ratio - 1) / (ratio + 1)
    weights = 1 + amplitude * np.cos(2 * np.pi * (np.arange(24) - PEAK_HOUR) / 24)
    return np.cumsum(weights) / weights.sum()


def _uniform32(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.random(n, dtype=np.float32)


def _uniform16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n draws of a uniform integer in [0, U16), as intp (ready to index a table)."""
    return rng.integers(0, U16, size=n, dtype=np.uint16).astype(np.intp)


def _u16_threshold(prob: np.ndarray | float) -> np.ndarray:
    """``u < threshold`` for a 16-bit uniform ``u`` holds with probability ``prob``
    (to 1/65,536)."""
    return np.rint(np.asarray(prob) * U16).astype(np.int32)


def _cell_midpoints() -> np.ndarray:
    """Probabilities at the middle of the 65,536 cells of a 16-bit uniform: an inverse CDF
    evaluated there is a table that turns a 16-bit uniform into the distribution's draw."""
    return (np.arange(U16) + 0.5) / U16


@functools.cache
def _normal_quantiles() -> np.ndarray:
    """Standard normal quantiles at the cell midpoints (once per process: 65,536 calls of
    the stdlib's inv_cdf, halved by symmetry)."""
    lower = _cell_midpoints()[: U16 // 2].tolist()
    z = np.array([statistics.NormalDist().inv_cdf(q) for q in lower])
    return np.concatenate([z, -z[::-1]])


def _gap_table(config: SynthConfig) -> np.ndarray:
    """In-session gaps in microseconds (int64): lognormal quantiles, capped below the timeout."""
    gap_s = np.exp(np.log(config.gap_median_s) + GAP_SIGMA * _normal_quantiles())
    return (np.clip(gap_s, 1.0, MAX_GAP_S) * US_PER_S).astype(np.int64)


def _category_table(config: SynthConfig) -> np.ndarray:
    """Flat intp table: entry ``persona * U16 + u`` is a category drawn from the persona's
    taste by the 16-bit uniform ``u``."""
    cdf = np.cumsum(category_taste(config), axis=1)
    last = len(CATEGORIES) - 1
    rows = [np.searchsorted(c, _cell_midpoints(), side="right") for c in cdf]
    return np.minimum(np.concatenate(rows), last).astype(np.intp)


def _grid_searchsorted(
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


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]])


def _grouped_cummax(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running max of int64 ``values`` restarting at each group (group ids non-decreasing)."""
    low = values.min()
    span = int(values.max() - low) + 1
    lifted = (values - low) + group.astype(np.int64) * span
    return np.maximum.accumulate(lifted) - group.astype(np.int64) * span + low


@dataclass(frozen=True)
class Behaviour:
    """What the model derives from the config alone: built once per part, not per block."""

    personas: dict[str, np.ndarray]  # per-persona parameters, indexed by persona code
    last_day_cdf: np.ndarray  # per persona: the day CDF at its last active day
    day_of: Callable[[np.ndarray], np.ndarray]  # uniform -> day index (weekly cycle)
    hour_of: Callable[[np.ndarray], np.ndarray]  # uniform -> hour (diurnal cycle)
    category_at: np.ndarray  # persona * U16 + 16-bit uniform -> category (_category_table)
    gap_at: np.ndarray  # 16-bit uniform -> in-session gap in microseconds (_gap_table)


def behaviour(config: SynthConfig) -> Behaviour:
    personas = _persona_arrays(config)
    day_cdf = _day_cdf(config)
    active_days = np.ceil(personas["active"] * config.days).astype(np.int64) - 1
    return Behaviour(
        personas=personas,
        last_day_cdf=day_cdf[active_days],
        day_of=_grid_searchsorted(day_cdf, 0.0, 1.0),
        hour_of=_grid_searchsorted(_hour_cdf(config), 0.0, 1.0),
        category_at=_category_table(config),
        gap_at=_gap_table(config),
    )


def events_block(
    config: SynthConfig,
    catalogue: Catalogue,
    model: Behaviour,
    block: int,
    first_user: int,
    persona: np.ndarray,
) -> dict[str, np.ndarray]:
    """Events of one RNG block of users, sorted by (user_id, ts).

    Returns:
        Columns user_id (uint32), ts (int64 us), event_type (int8 codes), product_id (uint32),
        price (float32).
    """
    rng = np.random.default_rng([config.seed, STREAM_EVENTS, block])
    pa_ = model.personas
    n_users = persona.size

    # --- sessions -------------------------------------------------------------------------
    activity = rng.lognormal(0.0, config.activity_sigma, n_users)
    rate = np.maximum(pa_["sessions"][persona] * activity - 1.0, 0.05)
    n_sessions = 1 + rng.poisson(rate)
    s_user = np.repeat(np.arange(n_users), n_sessions)
    s_persona = persona[s_user]
    n_s = s_user.size

    limit = model.last_day_cdf[s_persona]
    day = np.minimum(model.day_of(rng.random(n_s) * limit), config.days)
    hour = model.hour_of(rng.random(n_s))
    start = (
        epoch_us(config.start)
        + day * US_PER_DAY
        + hour * 3600 * US_PER_S
        + rng.integers(0, 3600 * US_PER_S, size=n_s)
    )

    length = np.rint(
        np.exp(rng.normal(np.log(pa_["len_median"][s_persona]), config.session_len_sigma))
    )
    length = np.clip(length, 1, 300).astype(np.int64)
    buy = rng.random(n_s) < pa_["buy_prob"][s_persona]
    one_buyer = pa_["one_purchase"][persona]
    pick = _segment_starts(n_sessions) + (rng.random(n_users) * n_sessions).astype(np.int64)
    buy[pick[one_buyer]] = True
    items = 1 + (rng.random(n_s) < 0.25) + (rng.random(n_s) < 0.05)
    items = np.where(buy, items, 0)
    length = np.maximum(length, 3 * items)
    s_cat_u = _uniform16(rng, n_s)

    # Order sessions by (user, start) before laying out their events: one int64 key
    # (block-local user index above the start offset) sorts faster than a lexsort.
    order = np.argsort((s_user.astype(np.int64) << 46) | (start - start.min()), kind="stable")
    s_user, s_persona, start = s_user[order], s_persona[order], start[order]
    length, items, s_cat_u = length[order], items[order], s_cat_u[order]

    # --- events inside sessions ------------------------------------------------------------
    n_e = int(length.sum())
    first_event = _segment_starts(length)
    last_event = first_event + length - 1
    per_event = lambda values: np.repeat(values, length)  # noqa: E731 (a gather, but faster)

    # Event times: a running sum of gaps, taken relative to the session's first event.
    running = np.cumsum(model.gap_at[_uniform16(rng, n_e)])
    duration = running[last_event] - running[first_event]

    # Push sessions apart: start_i >= end_{i-1} + timeout + 1 s, per user.
    step = duration + SESSION_TIMEOUT_US + US_PER_S
    user_first = _segment_starts(np.bincount(s_user, minlength=n_users))
    cum_step = np.cumsum(step) - step
    pushed = cum_step - cum_step[user_first][s_user]
    start = pushed + _grouped_cummax(start - pushed, s_user)

    # --- event types (only the few non-view events are touched) ------------------------------
    # The tail of a buying session: its last 3m events, laid out from its sessions alone.
    buying = np.flatnonzero(items)
    tail_len = 3 * items[buying]
    tail_m = np.repeat(items[buying], tail_len)
    within = np.arange(tail_len.sum()) - np.repeat(_segment_starts(tail_len), tail_len)
    tail_from_end = np.repeat(tail_len, tail_len) - 1 - within
    tail_idx = np.repeat(last_event[buying], tail_len) - tail_from_end
    is_bought = tail_from_end < tail_m
    bought = tail_idx[is_bought]
    tail_carts = tail_idx[~is_bought & ((tail_from_end - tail_m) % 2 == 0)]
    event_type = np.full(n_e, VIEW, dtype=np.int8)
    event_type[bought] = PURCHASE
    event_type[tail_carts] = ADD_TO_CART
    fixed = np.zeros(n_e, dtype=bool)  # a session's first event or in its tail
    fixed[first_event] = True
    fixed[tail_idx] = True
    e_persona = per_event(s_persona)
    cart_u16 = pa_["cart_u16"][e_persona]
    browse_cart = ~fixed & (_uniform16(rng, n_e) < cart_u16)
    browse_idx = np.flatnonzero(browse_cart)
    event_type[browse_idx] = ADD_TO_CART
    nxt = browse_idx + 1
    nxt = nxt[nxt < n_e]
    nxt = nxt[~fixed[nxt] & ~browse_cart[nxt]]
    removes = nxt[rng.random(nxt.size) < REMOVE_AFTER_CART_PROB]
    event_type[removes] = REMOVE_FROM_CART

    # --- products and prices ---------------------------------------------------------------
    category_at = model.category_at
    e_cat = per_event(category_at[s_persona * U16 + s_cat_u])
    loose = np.flatnonzero(_uniform16(rng, n_e) >= _u16_threshold(SESSION_CATEGORY_STICKINESS))
    e_cat[loose] = category_at[e_persona[loose] * U16 + _uniform16(rng, loose.size)]
    rank_plus_one = np.exp(_uniform32(rng, n_e) * catalogue.log_size[e_cat]).astype(np.int64)
    position = (catalogue.cat_offset - 1)[e_cat] + rank_plus_one
    bargain_idx = np.flatnonzero(pa_["bargain"][e_persona])
    position[bargain_idx] = catalogue.cheapest_at[position[bargain_idx]]
    product = catalogue.product_at[position]
    # Carts and removes act on the product just viewed; purchases on the tail's carted items.
    copy_prev = np.sort(np.concatenate([browse_idx, tail_carts]))
    product[copy_prev] = product[copy_prev - 1]
    product[removes] = product[removes - 1]
    product[bought] = product[bought - (tail_m[is_bought] + tail_from_end[is_bought] + 1)]

    promo = _uniform16(rng, n_e) < _u16_threshold(config.promo_prob)
    promo[bargain_idx[event_type[bargain_idx] != VIEW]] = True
    promo_idx = np.flatnonzero(promo)
    price = catalogue.base_price[product]
    price[promo_idx] *= rng.uniform(0.6, 0.9, promo_idx.size).astype(np.float32)

    events = {
        "user_id": per_event((first_user + s_user).astype(np.uint32)),
        "ts": per_event(start - running[first_event]) + running,
        "event_type": event_type,
        "product_id": product,
        "price": price,
    }
    # --- drop sessions pushed past the window end --------------------------------------------
    session_kept = start < epoch_us(config.start + dt.timedelta(days=config.days))
    if not session_kept.all():
        keep = per_event(session_kept)
        events = {name: values[keep] for name, values in events.items()}
    return events
