"""SynthConfig: what to generate, validated once; presets with their calibration sources.

Calibration targets (public e-commerce logs):

* REES46 "eCommerce behavior data from multi category store" (Oct 2019, 42M events):
  views ~96%, cart ~2.4%, purchase ~1.6%; remove_from_cart about a third of carts in the
  cosmetics shop variant; ~7% of users purchase.
* RetailRocket (2.7M events): views ~96.7%, addtocart ~2.5%, transaction ~0.8%; ~1% of
  visitors buy.
* Google Merchandise Store (GA4 sample): sessions with median 2 and mean ~4-5 hits, 30-minute
  session timeout, ~1.5-3% of sessions convert, evening peak about 8x the night trough.

The defaults aim at the middle of these ranges; ``preset="retailrocket"`` aims at the low
conversion end and ``preset="rees46"`` at the high-traffic multi-category store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from engine.exceptions import ConfigError
from engine.schema import MAX_BUCKETS

# Randomness is derived per block of this many users, whatever the chunking or worker count.
RNG_BLOCK_USERS = 4096

PERSONAS: tuple[str, ...] = (
    "casual_browser",
    "lapsed",
    "window_shopper",
    "one_time_buyer",
    "bargain_hunter",
    "loyal_buyer",
)


@dataclass(frozen=True)
class PersonaSpec:
    """How one planted persona behaves.

    Purchases follow the BG/NBD process (Fader, Hardie & Lee 2005) per user: with chance
    ``first_purchase`` the user makes a first purchase (at one of their sessions, drawn at
    random); after it, purchases come at rate lambda ~ Gamma(shape r, rate alpha) per day, and
    after each repeat purchase the user drops out with probability p ~ Beta(a, b). Personas
    without a ``purchase_rate`` make at most that one purchase. Spend per order follows the
    Gamma-Gamma model (Fader, Hardie & Lee 2005b): z ~ Gamma(shape p, rate nu),
    nu ~ Gamma(shape q, rate gamma).
    """

    share: float  # share of users
    sessions: float  # mean sessions per 30 days before the heavy-tailed activity factor
    session_len_median: float  # median events per session
    browse_cart_prob: float  # chance that a view is followed by an add_to_cart (no purchase)
    purchase_rate: tuple[float, float] | None = None  # (r, alpha): lambda ~ Gamma(r, alpha)
    dropout: tuple[float, float] = (1.0, 1.0)  # (a, b): p ~ Beta(a, b)
    spend: tuple[float, float, float] = (4.0, 5.0, 100.0)  # Gamma-Gamma (p, q, gamma)
    mean_active_days: float | None = None  # lapsing users stop after Exponential(this) days
    first_purchase: float = 0.0  # chance of a first purchase (at a session drawn at random)
    bargain: bool = False  # picks cheap products and buys on promotion
    leaning: tuple[int, ...] = ()  # categories the persona's taste leans to (see separation)


def _default_personas() -> dict[str, PersonaSpec]:
    return {
        "casual_browser": PersonaSpec(0.65, 1.6, 2.0, 0.008, leaning=(0, 1, 8)),
        "lapsed": PersonaSpec(
            0.15,
            12.0,  # a regular until they stop (about three sessions in their last week)
            2.0,
            0.015,
            purchase_rate=(0.5, 40.0),
            first_purchase=0.1,
            dropout=(1.0, 3.0),
            mean_active_days=7.0,
            leaning=(1, 6, 9),
        ),
        "window_shopper": PersonaSpec(0.10, 11.0, 2.5, 0.035, leaning=(2, 0, 4)),
        "one_time_buyer": PersonaSpec(
            0.04, 3.0, 2.0, 0.02, first_purchase=0.75, leaning=(4, 5, 11)
        ),
        "bargain_hunter": PersonaSpec(
            0.03,
            6.0,
            2.0,
            0.04,
            purchase_rate=(1.5, 30.0),
            first_purchase=0.9,
            dropout=(1.5, 6.0),
            spend=(4.0, 5.0, 30.0),
            bargain=True,
            leaning=(8, 1, 7),
        ),
        "loyal_buyer": PersonaSpec(
            0.03,
            10.0,
            2.0,
            0.02,
            purchase_rate=(2.0, 15.0),
            first_purchase=0.9,
            dropout=(1.0, 8.0),
            leaning=(6, 3, 10),
        ),
    }


@dataclass(frozen=True)
class ExperimentSpec:
    """A planted randomised experiment.

    From ``start_day`` on, each user is assigned at their first session (with probability
    ``split`` to the treatment); from that session on, a treated customer's chance that a
    session ends in a (repeat) purchase is multiplied by (1 + lift); first purchases are not
    moved (synth.process). The true effect: on sessions after both the assignment and the
    user's first purchase, the purchase rate of the treatment is 1 + lift times the control's.
    """

    name: str
    lift: float
    split: float = 0.5
    start_day: int = 0

    @staticmethod
    def parse(text: str) -> ExperimentSpec:
        """``NAME:LIFT[:SPLIT[:START_DAY]]``, for example ``checkout:0.1`` or ``aa:0:0.5:7``."""
        parts = text.split(":")
        try:
            if not 2 <= len(parts) <= 4 or not parts[0]:
                raise ValueError
            split = float(parts[2]) if len(parts) > 2 else 0.5
            start = int(parts[3]) if len(parts) > 3 else 0
            return ExperimentSpec(parts[0], float(parts[1]), split, start)
        except ValueError:
            raise ConfigError(
                f"experiment {text!r}: expected NAME:LIFT[:SPLIT[:START_DAY]], "
                "for example checkout:0.1 or aa:0:0.5:7"
            ) from None


# name, median price, share of the catalogue
CATEGORIES: tuple[tuple[str, float, float], ...] = (
    ("electronics", 250.0, 0.14),
    ("apparel", 40.0, 0.14),
    ("computers", 600.0, 0.08),
    ("books", 12.0, 0.08),
    ("appliances", 300.0, 0.10),
    ("furniture", 200.0, 0.08),
    ("kids", 25.0, 0.07),
    ("sport", 50.0, 0.07),
    ("beauty", 15.0, 0.07),
    ("accessories", 30.0, 0.06),
    ("auto", 60.0, 0.05),
    ("garden", 35.0, 0.06),
)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Frozen and validated on construction.

    Attributes:
        users: number of users.
        days: length of the event window in days.
        seed: root seed; every random stream is derived from it.
        products: number of products in the catalogue.
        start: first day of the window (UTC midnight).
        separation: 0..1, how much a persona's taste leans to its ``leaning`` categories: its
            prior is (1 - separation) x market mix + separation x the leaning (0: every
            persona's prior is the market mix). Users draw their own favourites from it
            (synth.users), so a persona's users do not share one top category.
        taste_focus: share of a user's category draws that go to their one to three
            favourite categories (the rest follow the persona's prior).
        new_users: share of users whose first visit falls inside the window (on a day drawn
            by the weekly cycle, uniform over the window); the rest are returning users,
            active from the window's start. Lapsing personas are always returning users.
        collection_stickiness: chance that a view after a session's first event shows a
            product of the session's collection (truth/collections.parquet).
        experiments: planted randomised experiments (ExperimentSpec).
        weekly_amplitude: 0..1, relative swing of the weekday cycle (peak on Sunday).
        diurnal_peak_to_trough: ratio of the busiest to the quietest hour (>= 1).
        session_len_sigma: log-scale spread of session lengths.
        gap_median_s: median seconds between events of a session.
        activity_sigma: log-scale spread of the per-user activity factor (heavy tail).
        promo_prob: chance that an event sees a promotional price.
        dirty: share of events that receive a labelled defect (0 for clean data).
        part_users: users per events part file.
        block_users: users generated per chunk (a multiple of RNG_BLOCK_USERS);
            changes memory use, never the output.
        row_group_rows: rows per Parquet row group.
        buckets: 0 writes events by user range (events/part-*.parquet); N > 0 writes the
            bucketed layout for Dask (events/bucket=NNNNN/part-*.parquet, users placed by the
            stable hash in engine.schema). The events are the same either way.
        personas: persona name -> PersonaSpec.
    """

    users: int = 100_000
    days: int = 30
    seed: int = 42
    products: int = 20_000
    start: dt.date = dt.date(2026, 10, 1)
    separation: float = 0.3
    taste_focus: float = 0.6
    new_users: float = 0.5
    collection_stickiness: float = 0.5
    experiments: tuple[ExperimentSpec, ...] = ()
    weekly_amplitude: float = 0.15
    diurnal_peak_to_trough: float = 8.0
    session_len_sigma: float = 1.1
    gap_median_s: float = 30.0
    activity_sigma: float = 0.8
    promo_prob: float = 0.15
    dirty: float = 0.0
    part_users: int = 131_072
    block_users: int = 16_384
    row_group_rows: int = 1_000_000
    buckets: int = 0
    personas: dict[str, PersonaSpec] = field(default_factory=_default_personas)

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"SynthConfig: {what}")

        need(self.users >= 1, f"users must be >= 1, got {self.users}")
        need(self.users < 2**32 - 1, f"users must fit in UInt32, got {self.users}")
        need(self.days >= 1, f"days must be >= 1, got {self.days}")
        need(self.seed >= 0, f"seed must be >= 0, got {self.seed}")
        need(
            self.products >= len(CATEGORIES),
            f"products must be >= {len(CATEGORIES)} (one per category), got {self.products}",
        )
        need(0.0 <= self.separation <= 1.0, f"separation must be in [0, 1], got {self.separation}")
        need(
            0.0 <= self.weekly_amplitude < 1.0,
            f"weekly_amplitude must be in [0, 1), got {self.weekly_amplitude}",
        )
        need(
            self.diurnal_peak_to_trough >= 1.0,
            f"diurnal_peak_to_trough must be >= 1, got {self.diurnal_peak_to_trough}",
        )
        need(self.session_len_sigma > 0, "session_len_sigma must be > 0")
        need(0 < self.gap_median_s < 600, "gap_median_s must be in (0, 600)")
        need(self.activity_sigma >= 0, "activity_sigma must be >= 0")
        need(0.0 <= self.promo_prob <= 1.0, f"promo_prob must be in [0, 1], got {self.promo_prob}")
        need(0.0 <= self.dirty <= 0.5, f"dirty must be in [0, 0.5], got {self.dirty}")
        need(
            self.block_users >= RNG_BLOCK_USERS and self.block_users % RNG_BLOCK_USERS == 0,
            f"block_users must be a positive multiple of {RNG_BLOCK_USERS}, got {self.block_users}",
        )
        need(
            self.part_users >= RNG_BLOCK_USERS and self.part_users % RNG_BLOCK_USERS == 0,
            f"part_users must be a positive multiple of {RNG_BLOCK_USERS}, got {self.part_users}",
        )
        need(self.row_group_rows >= 1000, "row_group_rows must be >= 1000")
        need(
            0 <= self.buckets <= MAX_BUCKETS,
            f"buckets must be in [0, {MAX_BUCKETS}] (0: no buckets), got {self.buckets}",
        )
        need(
            0.0 <= self.taste_focus <= 1.0, f"taste_focus must be in [0, 1], got {self.taste_focus}"
        )
        need(0.0 <= self.new_users <= 1.0, f"new_users must be in [0, 1], got {self.new_users}")
        need(
            0.0 <= self.collection_stickiness < 1.0,
            f"collection_stickiness must be in [0, 1), got {self.collection_stickiness}",
        )
        names = [e.name for e in self.experiments]
        need(len(set(names)) == len(names), f"experiment names must be unique, got {names}")
        for e in self.experiments:
            need(-1.0 < e.lift <= 1.0, f"experiment {e.name}: lift must be in (-1, 1]")
            need(0.0 < e.split < 1.0, f"experiment {e.name}: split must be in (0, 1)")
            need(
                0 <= e.start_day < self.days,
                f"experiment {e.name}: start day must be in [0, {self.days}), got {e.start_day}",
            )
        need(set(self.personas) == set(PERSONAS), f"personas must be exactly {PERSONAS}")
        total = sum(p.share for p in self.personas.values())
        need(abs(total - 1.0) < 1e-9, f"persona shares must sum to 1, got {total}")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (for the manifest)."""
        out = dataclasses.asdict(self)
        out["start"] = self.start.isoformat()
        return out


def _retailrocket() -> dict[str, Any]:
    personas = _default_personas()
    personas["casual_browser"] = dataclasses.replace(personas["casual_browser"], share=0.70)
    personas["one_time_buyer"] = dataclasses.replace(personas["one_time_buyer"], share=0.02)
    personas["lapsed"] = dataclasses.replace(personas["lapsed"], share=0.13)
    personas["loyal_buyer"] = dataclasses.replace(personas["loyal_buyer"], share=0.02)
    return {"personas": personas, "days": 60}


CONFIG_PRESETS: dict[str, dict[str, Any]] = {
    # ~100k users, ~1.5M events: the built-in default dataset that `ecomscale run` uses.
    "default": {},
    # A few seconds: tests and demos.
    "tiny": {"users": 5_000, "products": 2_000},
    # ~1M users, ~15M events: the benchmark "full" profile.
    "large": {"users": 1_000_000},
    # REES46-like: a busy multi-category store, one month.
    "rees46": {"users": 1_000_000, "products": 50_000, "days": 31},
    # RetailRocket-like: lower conversion, two months.
    "retailrocket": _retailrocket(),
}


def from_preset(name: str, **overrides: Any) -> SynthConfig:
    """A SynthConfig from a named preset, with keyword overrides (None values ignored)."""
    if name not in CONFIG_PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}. Hint: choose one of {', '.join(sorted(CONFIG_PRESETS))}"
        )
    params = dict(CONFIG_PRESETS[name])
    params.update({k: v for k, v in overrides.items() if v is not None})
    return SynthConfig(**params)
