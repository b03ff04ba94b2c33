"""The behaviour model: sessions, event sequences, products and prices for one user block.

Everything is vectorised over the block (assumes a validated config). The model:

* sessions per user: 1 + Poisson(rate x active days - 1), the rate from the persona times a
  lognormal activity factor (heavy-tailed; synth.process raises it for heavy buyers); a user
  is active from their arrival (new users' first session falls on that day) to their lapse or
  dropout (synth.process);
* session start: weekday-weighted day inside the user's active days, hour from a diurnal
  cycle with the configured peak-to-trough ratio; sessions of a user are pushed apart so
  that more than 30 minutes separate them (the session timeout holds);
* session length: discretised lognormal (median ~2, mean ~4); gaps inside a session:
  lognormal with the configured median, capped below the timeout;
* whether a session ends in a purchase comes from the latent process (synth.process); a
  buying session's tail is [view p1, cart p1, ..., view pm, cart pm, purchase p1, ..., pm];
  its order value z (Gamma-Gamma) is split over its items at random, each item is the product
  of its category whose base price is nearest its share, and the checkout prices are the
  base prices scaled so the order totals z;
* other views turn into add_to_cart of the product just viewed with the persona's
  browse-cart probability, and a cart is often followed by its remove_from_cart;
* categories: mostly the session's category, drawn from the user's own taste (synth.users);
  product rank inside a category is log-uniform (Zipf slope -1); bargain hunters favour the
  cheapest;
* collections: each view after a session's first event (outside a buying session's tail)
  shows, with the configured stickiness, a uniformly drawn product of the session's
  collection: the collection of the
  first event's product, or in a buying session of its first purchased item.

Per-event draws use 16-bit uniforms and inverse-CDF tables (synth.draws).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.schema import ADD_TO_CART, PURCHASE, REMOVE_FROM_CART, VIEW
from synth.catalogue import (
    STREAM_EVENTS,
    STREAM_EXPERIMENTS,
    STREAM_PROCESS,
    Catalogue,
    nearest_priced,
)
from synth.config import PERSONAS, SynthConfig
from synth.draws import (
    US_PER_S,
    bits16,
    cell_midpoints,
    gap_table,
    grid_searchsorted,
    hour_cdf,
    normal_quantiles,
    u16_threshold,
    uniform16,
    uniform32,
)
from synth.process import Latent, Walk, draw_latent, truth_tables, walk_sessions
from synth.users import (
    MAX_FAVOURITES,
    U16,
    US_PER_DAY,
    UserDraws,
    category_table,
    day_cdf,
    epoch_us,
)

SESSION_TIMEOUT_US = 30 * 60 * US_PER_S
REMOVE_AFTER_CART_PROB = 0.75
SESSION_CATEGORY_STICKINESS = 0.7
ITEM_SHARE_SHAPE = 2.0  # an order's items split its value by Gamma(this) weights


def _persona_arrays(config: SynthConfig) -> dict[str, np.ndarray]:
    specs = [config.personas[p] for p in PERSONAS]
    return {
        "log_len_median": np.log([s.session_len_median for s in specs]),
        "cart_u16": u16_threshold(np.array([s.browse_cart_prob for s in specs])),
        "bargain": np.array([s.bargain for s in specs]),
    }


def _category_draw(
    model: Behaviour,
    users: UserDraws,
    user: np.ndarray,
    persona: np.ndarray,
    focus_u16: np.ndarray,
    prior_u16: np.ndarray,
) -> np.ndarray:
    """Categories drawn from the users' tastes (synth.users): a favourite when ``focus_u16``
    falls below the focus threshold (which one: that same uniform, rescaled), else a draw
    from the persona's prior by ``prior_u16``."""
    focus = focus_u16 < model.focus_u16
    which = (focus_u16 * users.n_favourites[user]) // max(model.focus_u16, 1)
    favourite = users.favourites[user, np.minimum(which, MAX_FAVOURITES - 1)]
    return np.where(focus, favourite, model.category_at[persona * U16 + prior_u16])


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
    day_cdf: np.ndarray  # (days + 1,) the weekly-cycle CDF before each day (users.day_cdf)
    day_of: Callable[[np.ndarray], np.ndarray]  # uniform -> day index (weekly cycle)
    hour_at: np.ndarray  # 16-bit uniform -> hour (diurnal cycle)
    gap_at: np.ndarray  # 16-bit uniform -> in-session gap in microseconds (draws.gap_table)
    category_at: np.ndarray  # persona * U16 + 16-bit uniform -> category (prior)
    focus_u16: int  # a 16-bit uniform below this picks a favourite category


def behaviour(config: SynthConfig) -> Behaviour:
    cdf = day_cdf(config)
    return Behaviour(
        personas=_persona_arrays(config),
        day_cdf=cdf,
        day_of=grid_searchsorted(cdf[1:], 0.0, 1.0),
        hour_at=grid_searchsorted(hour_cdf(config), 0.0, 1.0)(cell_midpoints()).astype(np.int8),
        gap_at=gap_table(config),
        category_at=category_table(config),
        focus_u16=int(u16_threshold(config.taste_focus)),
    )


@dataclass(frozen=True)
class Sessions:
    """A block's sessions, sorted by (user, start), after the purchase-process walk."""

    user: np.ndarray  # block-local user index
    start: np.ndarray  # int64 us, before the sessions of a user are pushed apart
    length: np.ndarray  # events (at least 3 per purchased item)
    items: np.ndarray  # purchased items (0: no purchase)
    category_u16: np.ndarray  # the 16-bit uniform that draws the session's category
    died_after: np.ndarray  # bool: the user drops out after this session
    assigned: np.ndarray  # (n_experiments, n_users) session index of assignment, -1 if none


def _sessions(
    config: SynthConfig,
    model: Behaviour,
    rng: np.random.Generator,
    users: UserDraws,
    latent: Latent,
    experiment_rng: np.random.Generator,
) -> tuple[Sessions, Walk]:
    """The block's sessions (only those that happen), and the walk that decided them."""
    n_users = users.persona.size
    span = latent.end_day - users.arrival_day
    n_sessions = 1 + rng.poisson(np.maximum(latent.session_rate * span - 1.0, 0.05))
    s_user = np.repeat(np.arange(n_users), n_sessions)
    n_s = s_user.size

    # Days inside each user's active span; a new user's first session on their arrival day.
    arrival, end = users.arrival_day[s_user], latent.end_day[s_user]
    last = end.copy()
    last[_segment_starts(n_sessions)[users.new]] = users.arrival_day[users.new] + 1
    low, high = model.day_cdf[arrival], model.day_cdf[last]
    day = np.clip(model.day_of(low + rng.random(n_s) * (high - low)), arrival, last - 1)
    hour = model.hour_at[bits16(rng, n_s)]
    start = (
        epoch_us(config.start)
        + day * US_PER_DAY
        + hour.astype(np.int64) * 3600 * US_PER_S
        + rng.integers(0, 3600 * US_PER_S, size=n_s)
    )
    persona = users.persona[s_user]
    z = normal_quantiles()[uniform16(rng, n_s)]
    log_length = model.personas["log_len_median"][persona] + config.session_len_sigma * z
    length = np.clip(np.rint(np.exp(log_length)), 1, 300).astype(np.int64)
    items = 1 + (rng.random(n_s) < 0.25) + (rng.random(n_s) < 0.05)
    category_u16 = uniform16(rng, n_s)

    # Order by (user, start): one int64 key (block-local user index above the start offset)
    # sorts faster than a lexsort.
    order = np.argsort((s_user.astype(np.int64) << 46) | (start - start.min()), kind="stable")
    s_user, day, start = s_user[order], day[order], start[order]
    length, items, category_u16 = length[order], items[order], category_u16[order]

    walk = walk_sessions(config, latent, rng, experiment_rng, s_user, day, n_users)
    keep = walk.keep
    new_index = np.cumsum(keep) - 1
    assigned = np.where(walk.assigned >= 0, new_index[np.maximum(walk.assigned, 0)], -1)
    items = np.where(walk.buy, items, 0)[keep]
    sessions = Sessions(
        user=s_user[keep],
        start=start[keep],
        length=np.maximum(length[keep], 3 * items),
        items=items,
        category_u16=category_u16[keep],
        died_after=walk.died_after[keep],
        assigned=assigned,
    )
    return sessions, walk


def events_block(
    config: SynthConfig,
    catalogue: Catalogue,
    model: Behaviour,
    block: int,
    first_user: int,
    users: UserDraws,
) -> tuple[dict[str, np.ndarray], pa.Table, list[pa.Table]]:
    """Events of one RNG block of users, sorted by (user_id, ts), and the block's truths.

    Returns:
        Columns user_id (uint32), ts (int64 us), event_type (int8 codes), product_id (uint32),
        price (float32); truth/purchase_process.parquet rows; truth/experiments.parquet
        rows (a table per experiment).
    """
    rng = np.random.default_rng([config.seed, STREAM_EVENTS, block])
    process_rng = np.random.default_rng([config.seed, STREAM_PROCESS, block])
    experiment_rng = np.random.default_rng([config.seed, STREAM_EXPERIMENTS, block])
    n_users = users.persona.size
    activity = process_rng.lognormal(0.0, config.activity_sigma, n_users)
    latent = draw_latent(config, process_rng, users, activity)
    sessions, walk = _sessions(config, model, rng, users, latent, experiment_rng)
    s_user, length, items = sessions.user, sessions.length, sessions.items
    s_persona = users.persona[s_user]
    n_s = s_user.size

    # --- events inside sessions ------------------------------------------------------------
    n_e = int(length.sum())
    first_event = _segment_starts(length)
    last_event = first_event + length - 1
    per_event = lambda values: np.repeat(values, length)  # noqa: E731 (a gather, but faster)

    # Event times: a running sum of gaps, taken relative to the session's first event.
    running = np.cumsum(model.gap_at[uniform16(rng, n_e)])
    duration = running[last_event] - running[first_event]

    # Push sessions apart: start_i >= end_{i-1} + timeout + 1 s, per user.
    step = duration + SESSION_TIMEOUT_US + US_PER_S
    user_first = _segment_starts(np.bincount(s_user, minlength=n_users))
    cum_step = np.cumsum(step) - step
    pushed = cum_step - cum_step[user_first][s_user]
    start = sessions.start
    start = pushed + _grouped_cummax(start - pushed, s_user)

    # --- event types (only the few non-view events are touched) ------------------------------
    # The tail of a buying session: its last 3m events, laid out from its sessions alone.
    buying = np.flatnonzero(items)
    tail_len = 3 * items[buying]
    tail_m = np.repeat(items[buying], tail_len)
    tail_session = np.repeat(buying, tail_len)
    within = np.arange(tail_len.sum()) - np.repeat(_segment_starts(tail_len), tail_len)
    tail_from_end = np.repeat(tail_len, tail_len) - 1 - within
    tail_idx = np.repeat(last_event[buying], tail_len) - tail_from_end
    is_bought = tail_from_end < tail_m
    bought = tail_idx[is_bought]
    is_cart = ~is_bought & ((tail_from_end - tail_m) % 2 == 0)
    tail_carts = tail_idx[is_cart]
    event_type = np.full(n_e, VIEW, dtype=np.int8)
    event_type[bought] = PURCHASE
    event_type[tail_carts] = ADD_TO_CART
    fixed = np.zeros(n_e, dtype=bool)  # a session's first event or in its tail
    fixed[first_event] = True
    fixed[tail_idx] = True
    e_persona = per_event(s_persona)
    cart_u16 = model.personas["cart_u16"][e_persona]
    browse_cart = ~fixed & (bits16(rng, n_e) < cart_u16)
    browse_idx = np.flatnonzero(browse_cart)
    event_type[browse_idx] = ADD_TO_CART
    nxt = browse_idx + 1
    nxt = nxt[nxt < n_e]
    nxt = nxt[~fixed[nxt] & ~browse_cart[nxt]]
    removes = nxt[rng.random(nxt.size) < REMOVE_AFTER_CART_PROB]
    event_type[removes] = REMOVE_FROM_CART

    # --- products --------------------------------------------------------------------------
    e_session = per_event(np.arange(n_s))
    s_cat = _category_draw(
        model, users, s_user, s_persona, sessions.category_u16, uniform16(rng, n_s)
    )
    e_cat = per_event(s_cat)
    # One 16-bit draw routes each event: below ``sticky_below`` a view shows a product of the
    # session's collection (below); of the rest, the top 30% draw their own category (loose),
    # the others keep the session's.
    route = bits16(rng, n_e)
    sticky_below = int(u16_threshold(config.collection_stickiness))
    loose_from = sticky_below + round((U16 - sticky_below) * SESSION_CATEGORY_STICKINESS)
    loose = np.flatnonzero(route >= loose_from)
    e_cat[loose] = _category_draw(
        model,
        users,
        s_user[e_session[loose]],
        e_persona[loose],
        uniform16(rng, loose.size),
        uniform16(rng, loose.size),
    )
    rank_plus_one = np.exp(uniform32(rng, n_e) * catalogue.log_size[e_cat]).astype(np.int64)
    position = (catalogue.cat_offset - 1)[e_cat] + rank_plus_one
    bargain_idx = np.flatnonzero(model.personas["bargain"][e_persona])
    position[bargain_idx] = catalogue.cheapest_at[position[bargain_idx]]

    # Orders: each item's view shows the product priced nearest its share of the order value.
    item_views = tail_idx[is_cart] - 1
    order_value = rng.gamma(
        latent.spend_shape[s_user[buying]], 1.0 / latent.spend_rate[s_user[buying]]
    )
    weights = rng.gamma(ITEM_SHARE_SHAPE, size=item_views.size)
    order_of_item = np.repeat(np.arange(buying.size), items[buying])
    shares = weights / np.bincount(order_of_item, weights)[order_of_item]
    target = (order_value[order_of_item] * shares).astype(np.float64)
    position[item_views] = nearest_priced(catalogue, e_cat[item_views], target)

    # Collections: sticky views show a member of the session's collection.
    anchor = first_event.copy()
    anchor[buying] = item_views[_segment_starts(items[buying])]
    collection = catalogue.collection_of[position[anchor]]
    sticky = route < sticky_below
    sticky[first_event] = False
    sticky[tail_idx] = False
    sticky_idx = np.flatnonzero(sticky)
    s_collection = collection[e_session[sticky_idx]]
    size = catalogue.collection_size[s_collection]
    # the routing draw, uniform in [0, sticky_below) here, rescaled to a member in [0, size)
    offset = (route[sticky_idx].astype(np.int64) * size) // sticky_below
    members = catalogue.collection_members
    position[sticky_idx] = members[catalogue.collection_start[s_collection] + offset]

    product = catalogue.product_at[position]
    # Carts and removes act on the product just viewed; purchases on the tail's carted items.
    copy_prev = np.sort(np.concatenate([browse_idx, tail_carts]))
    product[copy_prev] = product[copy_prev - 1]
    product[removes] = product[removes - 1]
    product[bought] = product[bought - (tail_m[is_bought] + tail_from_end[is_bought] + 1)]

    # --- prices ----------------------------------------------------------------------------
    promo = bits16(rng, n_e) < u16_threshold(config.promo_prob)
    promo[bargain_idx[event_type[bargain_idx] != VIEW]] = True
    promo_idx = np.flatnonzero(promo)
    price = catalogue.base_price[product]
    price[promo_idx] *= rng.uniform(0.6, 0.9, promo_idx.size).astype(np.float32)
    # Checkout: the base prices scaled so the order totals its planted value.
    list_price = catalogue.base_price[product[bought]].astype(np.float64)
    bought_order = np.searchsorted(buying, tail_session[is_bought])
    scale = order_value / np.bincount(bought_order, list_price, minlength=buying.size)
    price[bought] = np.round(list_price * scale[bought_order], 2).astype(np.float32)

    events = {
        "user_id": per_event((first_user + s_user).astype(np.uint32)),
        "ts": per_event(start - running[first_event]) + running,
        "event_type": event_type,
        "product_id": product,
        "price": price,
    }
    # --- drop sessions pushed past the window end --------------------------------------------
    # (and past the user's lapse: the window's end for users who do not lapse)
    session_kept = start < (epoch_us(config.start) + latent.end_day * US_PER_DAY)[s_user]
    if not session_kept.all():
        keep = per_event(session_kept)
        events = {name: values[keep] for name, values in events.items()}

    # --- truths ------------------------------------------------------------------------------
    end = start + duration
    first_ts = start[user_first]  # every user has a first session (dropouts come later)
    died = np.flatnonzero(sessions.died_after & session_kept)
    inactive_ts = np.full(n_users, -1, dtype=np.int64)
    inactive_ts[s_user[died]] = end[died]
    # A lapse takes effect at midnight, or after a last session that runs past it.
    lapse_ts = epoch_us(config.start) + latent.end_day * US_PER_DAY
    np.maximum.at(lapse_ts, s_user[session_kept], end[session_kept])
    lapsed = (latent.end_day < config.days) & (inactive_ts < 0)
    inactive_ts[lapsed] = lapse_ts[lapsed]
    assigned = sessions.assigned
    seen = (assigned >= 0) & session_kept[np.maximum(assigned, 0)]
    assigned_ts = np.where(seen, start[np.maximum(assigned, 0)], -1)
    process, experiments = truth_tables(
        config, first_user, users, latent, walk, first_ts, inactive_ts, assigned_ts
    )
    return events, process, experiments
