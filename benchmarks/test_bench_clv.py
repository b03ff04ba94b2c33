"""CLV: our rfm and BG/NBD fit against lifetimes 0.11.3 on the same data, same run.

The customers are simulated from the BG/NBD with CDNOW's parameters over daily periods
(``benchmarks/clv_peers.py``). Quality: the same rfm rows, and fits whose log-likelihoods
agree to 1e-3 relative (lifetimes stops at a looser tolerance). Guards: ours at least GUARD_FIT / GUARD_RFM times lifetimes' speed.
The larger study (100k-customer fit, 10M purchases, 5M customers, CDNOW tiled 100 times) is
``python -m benchmarks.clv_study``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pytest

from benchmarks.clv_peers import simulate_purchases
from benchmarks.conftest import Profile, best_of, slowdown
from engine.clv import BetaGeo, rfm

GUARD_FIT = 4.0
GUARD_RFM = 2.5
AS_OF = dt.datetime(2026, 12, 31, tzinfo=dt.UTC)


def _lifetimes_summary(purchases: Any) -> Any:
    from lifetimes.utils import summary_data_from_transaction_data

    frame = purchases.with_columns(purchases["ts"].dt.replace_time_zone(None)).to_pandas()
    return summary_data_from_transaction_data(
        frame,
        "user_id",
        "ts",
        monetary_value_col="price",
        observation_period_end=AS_OF.replace(tzinfo=None),
    )


def test_clv_vs_lifetimes(benchmark: Any, profile: Profile) -> None:
    lifetimes = pytest.importorskip("lifetimes")
    customers = 20_000 if profile.name != "full" else 100_000
    purchases = simulate_purchases(customers, seed=1)

    def ours_rfm() -> Any:
        if slowdown("clv"):
            time.sleep(2.0)
        return rfm(purchases.lazy(), as_of=AS_OF).collect()

    rows = benchmark.pedantic(ours_rfm, rounds=profile.rounds, warmup_rounds=1, iterations=1)
    rfm_s = benchmark.stats.stats.min
    peer_rfm_s, summary = best_of(lambda: _lifetimes_summary(purchases), 1)
    np.testing.assert_allclose(rows["frequency"].to_numpy(), summary["frequency"].to_numpy())
    np.testing.assert_allclose(rows["T"].to_numpy(), summary["T"].to_numpy())

    x, t_x, T = (rows[c].to_numpy() for c in ("frequency", "recency", "T"))
    BetaGeo().fit(x, t_x, T)  # compiles the kernel
    fit_s, model = best_of(lambda: BetaGeo().fit(x, t_x, T), profile.rounds)
    peer_fit_s, peer = best_of(lambda: lifetimes.BetaGeoFitter().fit(x, t_x, T), 1)
    for name, value in peer.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-3)
    fit_ratio, rfm_ratio = peer_fit_s / fit_s, peer_rfm_s / rfm_s
    benchmark.extra_info.update(
        purchases=purchases.height,
        customers=len(x),
        fit_s=fit_s,
        lifetimes_fit_s=peer_fit_s,
        ratio_fit_vs_lifetimes=fit_ratio,
        ratio_rfm_vs_lifetimes=rfm_ratio,
        log_likelihood=model.log_likelihood_,
    )
    print(
        f"\nclv: {purchases.height:,} purchases, {len(x):,} customers; rfm {rfm_ratio:.1f}x "
        f"lifetimes, BG/NBD fit {fit_s * 1e3:.0f} ms ({fit_ratio:.1f}x lifetimes)"
    )
    assert fit_ratio >= GUARD_FIT and rfm_ratio >= GUARD_RFM
