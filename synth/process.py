"""The latent purchase process and the planted experiments of one block of users.

The model (documented so that a CLV method can be checked against it):

* The first purchase (with the persona's ``first_purchase`` chance) happens at one of the
  user's sessions drawn uniformly, so when the BG/NBD clock starts, and who starts it, does
  not depend on the rate: the buyers are a fair sample of the persona's Gamma(r, alpha).
* After it, sessions arrive at rate ``s`` per day and each ends in a purchase with chance
  ``pi = lambda / s``, so repeat purchases form a Poisson process with the user's rate
  ``lambda ~ Gamma(r, alpha)`` (per day; ``s`` is raised where needed to keep
  ``pi <= MAX_CONVERSION``: heavy buyers visit more); after each repeat purchase the user
  drops out for good (no more sessions) with probability ``p ~ Beta(a, b)``.
* Lapsing personas also stop at a day ``ceil(Exponential(mean_active_days))`` after arrival.
* One-time buyers have no rate: at most the first purchase.
* Each purchase session is an order worth ``z ~ Gamma(p, nu)``, ``nu ~ Gamma(q, gamma)`` per
  user (Gamma-Gamma); the mean spend per order is ``p / nu``.
* An experiment assigns a user at their first session on or after its start day; from that
  session on a treated customer's ``pi`` is multiplied by (1 + lift) (capped at 1); the added
  purchases do not lead to dropouts, so both arms keep the same sessions. First purchases are
  not moved (they start the BG/NBD clock at a random session), so the effect is exact on the
  sessions that follow both the assignment and the user's first purchase: their purchase
  rate is (1 + lift) times the control's.

Sessions are walked in time order per user, all vectorised over the block.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.schema import EXPERIMENTS_SCHEMA, PURCHASE_PROCESS_SCHEMA, arrow_schema
from synth import arrow
from synth.config import PERSONAS, PersonaSpec, SynthConfig
from synth.users import UserDraws

MAX_CONVERSION = 0.6
HORIZON_DAYS = 30  # truth: expected purchases in this many days after the window
VARIANTS = ("control", "treatment")


@dataclass(frozen=True)
class Latent:
    """Per-user draws of the purchase process."""

    rate: np.ndarray  # lambda, purchases per day (0: no repeat purchases)
    dropout: np.ndarray  # p (NaN where the persona has no BG/NBD process)
    spend_shape: np.ndarray  # Gamma-Gamma p
    spend_rate: np.ndarray  # nu (NaN for users who never buy)
    end_day: np.ndarray  # int64, first day the user is no longer active (lapse), <= days
    session_rate: np.ndarray  # sessions per day
    conversion: np.ndarray  # pi, chance that a session ends in a purchase
    first_purchase: np.ndarray  # chance that the user ever makes a first purchase
    lapse_rate: np.ndarray  # 1 / mean_active_days (0: no lapse)


@functools.cache
def _persona_params(personas: tuple[PersonaSpec, ...]) -> dict[str, np.ndarray]:
    """Per-persona parameters as arrays indexed by persona code (NaN where not defined)."""
    nan = math.nan

    def column(values: list[float | None]) -> np.ndarray:
        return np.array([nan if v is None else v for v in values], dtype=np.float64)

    return {
        "r": column([s.purchase_rate[0] if s.purchase_rate else None for s in personas]),
        "alpha": column([s.purchase_rate[1] if s.purchase_rate else None for s in personas]),
        "a": column([s.dropout[0] for s in personas]),
        "b": column([s.dropout[1] for s in personas]),
        "p": column([s.spend[0] for s in personas]),
        "q": column([s.spend[1] for s in personas]),
        "gamma": column([s.spend[2] for s in personas]),
        "mean_active": column([s.mean_active_days for s in personas]),
        "sessions": column([s.sessions / 30.0 for s in personas]),
        "buys": np.array([s.purchase_rate is not None for s in personas]),
        "first_purchase": column([s.first_purchase for s in personas]),
    }


def draw_latent(
    config: SynthConfig, rng: np.random.Generator, users: UserDraws, activity: np.ndarray
) -> Latent:
    """The block's latent process, drawn only for the users who need each part of it."""
    params = _persona_params(tuple(config.personas[name] for name in PERSONAS))
    persona, n = users.persona, users.persona.size
    first_purchase = params["first_purchase"][persona]
    buys = np.flatnonzero(params["buys"][persona])
    spenders = np.flatnonzero(first_purchase > 0)
    lapsing = np.flatnonzero(np.isfinite(params["mean_active"][persona]))

    def param(name: str, who: np.ndarray) -> np.ndarray:
        return params[name][persona[who]]

    rate = np.zeros(n)
    rate[buys] = rng.gamma(param("r", buys), 1.0 / param("alpha", buys))
    dropout = np.full(n, np.nan)
    dropout[buys] = rng.beta(param("a", buys), param("b", buys))
    spend_rate = np.full(n, np.nan)
    spend_rate[spenders] = rng.gamma(param("q", spenders), 1.0 / param("gamma", spenders))
    lapse_days = np.full(n, config.days, dtype=np.int64)
    mean_active = param("mean_active", lapsing)
    lapse_days[lapsing] = np.maximum(np.ceil(rng.exponential(mean_active)), 1)
    lapse_rate = np.zeros(n)
    lapse_rate[lapsing] = 1.0 / mean_active
    end_day = np.minimum(users.arrival_day + lapse_days, config.days)

    session_rate = np.maximum(params["sessions"][persona] * activity, rate / MAX_CONVERSION)
    conversion = rate / np.where(session_rate > 0, session_rate, 1.0)
    return Latent(
        rate, dropout, params["p"][persona], spend_rate, end_day, session_rate, conversion,
        first_purchase, lapse_rate,
    )  # fmt: skip


@dataclass(frozen=True)
class Walk:
    """The outcome of walking a block's sessions in time order."""

    keep: np.ndarray  # (n_sessions,) bool: the session happens (the user has not dropped out)
    buy: np.ndarray  # (n_sessions,) bool: the session ends in a purchase
    died_after: np.ndarray  # (n_sessions,) bool: the user drops out after this session
    assigned: np.ndarray  # (n_experiments, n_users) session index of assignment, -1 if none
    treated: np.ndarray  # (n_experiments, n_users) bool
    uplift: np.ndarray  # (n_users,) product of (1 + lift) over the user's treatments
    born: np.ndarray  # (n_users,) bool: the user made a first purchase


def _first_index(mask: np.ndarray, s_user: np.ndarray, n_users: int, none: int) -> np.ndarray:
    """Per user, the first session index where ``mask`` holds (``none`` where it never does)."""
    out = np.full(n_users, none, dtype=np.int64)
    idx = np.flatnonzero(mask)[::-1]  # reversed: the first index is the last write
    out[s_user[idx]] = idx
    return out


def walk_sessions(
    config: SynthConfig,
    latent: Latent,
    rng: np.random.Generator,
    experiment_rng: np.random.Generator,
    s_user: np.ndarray,
    s_day: np.ndarray,
    n_users: int,
) -> Walk:
    """Purchases, dropouts and experiment assignments of sessions sorted by (user, start)."""
    n_s = s_user.size
    index = np.arange(n_s)
    multiplier = np.ones(n_s)
    n_exp = len(config.experiments)
    assigned = np.full((n_exp, n_users), -1, dtype=np.int64)
    treated = np.zeros((n_exp, n_users), dtype=bool)
    uplift = np.ones(n_users)
    for k, experiment in enumerate(config.experiments):
        treated[k] = experiment_rng.random(n_users) < experiment.split
        first = _first_index(s_day >= experiment.start_day, s_user, n_users, -1)
        assigned[k] = first
        after = (first[s_user] >= 0) & (index >= first[s_user]) & treated[k][s_user]
        multiplier[after] *= 1.0 + experiment.lift
        uplift[treated[k] & (first >= 0)] *= 1.0 + experiment.lift

    # The first purchase: at one session drawn uniformly (so the time it starts the BG/NBD
    # clock does not depend on the rate), and only with the persona's first-purchase chance.
    count = np.bincount(s_user, minlength=n_users)
    first_session = np.cumsum(count) - count  # every user has a session
    birth = first_session + (rng.random(n_users) * count).astype(np.int64)
    born = rng.random(n_users) < latent.first_purchase
    birth = np.where(born, birth, n_s)
    after_birth = index > birth[s_user]
    later = np.flatnonzero(after_birth)
    # One uniform per session: below pi a purchase in any arm; up to pi (1 + lift) a purchase
    # the treatment adds. Only the former can end a life, so both arms keep the same sessions
    # (a treatment that also shortened lives would shift which users' sessions are counted).
    u = rng.random(later.size)
    conversion = latent.conversion[s_user[later]]
    buy = np.zeros(n_s, dtype=bool)
    buy[later] = u < np.minimum(conversion * multiplier[later], 1.0)
    repeat = np.zeros(n_s, dtype=bool)
    repeat[later] = u < conversion
    buy[birth[born]] = True
    repeats = np.flatnonzero(repeat)
    died_after = np.zeros(n_s, dtype=bool)
    died_after[repeats] = rng.random(repeats.size) < np.nan_to_num(latent.dropout[s_user[repeats]])
    deaths = np.cumsum(died_after) - died_after  # dropouts strictly before each session
    before_user = deaths[first_session][s_user]
    keep = deaths == before_user
    for k in range(n_exp):  # an assignment at a session that never happens does not count
        gone = (assigned[k] >= 0) & ~keep[np.maximum(assigned[k], 0)]
        uplift[gone & treated[k]] /= 1.0 + config.experiments[k].lift
        assigned[k][gone] = -1
    return Walk(keep, buy, died_after, assigned, treated, uplift, born)


def expected_purchases(latent: Latent, uplift: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Expected purchases in HORIZON_DAYS under the truth, for buyers (users who made their first
    purchase) active at the window's end; 0 for the others.

    While active, purchases come at rate lambda (times the user's uplift when treated) and the
    untreated share of them ends the user's life with chance p, so lives end at rate
    kappa = lambda p + mu (mu: the lapse rate); the expectation is
    lambda uplift (1 - exp(-kappa t)) / kappa.
    """
    who = np.flatnonzero(active & (latent.rate > 0))  # the others expect none
    rate = latent.rate[who] * uplift[who]
    kappa = latent.rate[who] * latent.dropout[who] + latent.lapse_rate[who]
    out = np.zeros(latent.rate.size)
    safe = np.where(kappa > 0, kappa, 1.0)
    out[who] = np.where(
        kappa > 0, rate * -np.expm1(-safe * HORIZON_DAYS) / safe, rate * HORIZON_DAYS
    )
    return out


def truth_tables(
    config: SynthConfig,
    first_user: int,
    users: UserDraws,
    latent: Latent,
    walk: Walk,
    first_ts: np.ndarray,
    inactive_ts: np.ndarray,
    assigned_ts: np.ndarray,
) -> tuple[pa.Table, list[pa.Table]]:
    """truth/purchase_process.parquet rows of one block, and its truth/experiments.parquet
    rows (a table per experiment).

    ``first_ts`` and ``inactive_ts`` (a dropout's last purchase, or a lapse) are per user
    (int64 us; -1 for none); ``assigned_ts`` is (n_experiments, n_users), -1 where the user
    was not assigned.
    """
    n = users.persona.size
    user_id = np.arange(first_user, first_user + n, dtype=np.uint32)
    ts_type = pa.timestamp("us", tz="UTC")
    has_spend = np.isfinite(latent.spend_rate)
    mean_spend = latent.spend_shape / np.where(has_spend, latent.spend_rate, 1.0)
    process = pa.table(
        {
            "user_id": arrow.numbers(user_id),
            "arrived_ts": arrow.numbers(first_ts, ts_type, null=~users.new),
            "purchase_rate": arrow.numbers(latent.rate),
            "dropout": arrow.numbers(np.nan_to_num(latent.dropout), null=np.isnan(latent.dropout)),
            "mean_spend": arrow.numbers(mean_spend, null=~has_spend),
            "inactive_ts": arrow.numbers(inactive_ts, ts_type, null=inactive_ts < 0),
            "expected_purchases_30d": arrow.numbers(
                expected_purchases(latent, walk.uplift, (inactive_ts < 0) & walk.born)
            ),
        },
        schema=arrow_schema(PURCHASE_PROCESS_SCHEMA),
    )
    rows = []  # one table per experiment (none without experiments: the file is not written)
    for k, experiment in enumerate(config.experiments):
        who = np.flatnonzero(assigned_ts[k] >= 0)
        rows.append(
            pa.table(
                {
                    "user_id": arrow.numbers(user_id[who]),
                    "experiment": arrow.decoded(np.zeros(who.size, np.int64), [experiment.name]),
                    "variant": arrow.decoded(walk.treated[k][who].astype(np.int64), VARIANTS),
                    "assigned_ts": arrow.numbers(assigned_ts[k][who], ts_type),
                },
                schema=arrow_schema(EXPERIMENTS_SCHEMA),
            )
        )
    return process, rows
