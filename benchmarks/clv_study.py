"""CLV at scale against lifetimes 0.11.3, in one run (figures for the README).

    python -m benchmarks.clv_study [--purchases 10000000]

Measures: the BG/NBD fit on the same 100k customers (ours best of 3, lifetimes once, both
unpenalised), the rfm summary of ~10M purchases (ours vs lifetimes'
summary_data_from_transaction_data), a fit on the ~5M customers of those purchases (ours
only), and CDNOW tiled 100 times (235,700 customers; both). Writes
benchmarks/results/clv.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.clv_peers import simulate_purchases
from benchmarks.test_bench_clv import AS_OF, _lifetimes_summary
from engine.clv import BetaGeo, rfm

RESULTS = Path(__file__).parent / "results" / "clv.json"


def _timed(fn: Any, rounds: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _fit_row(name: str, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, peer: bool) -> dict:  # noqa: N803
    ours_s, model = _timed(lambda: BetaGeo().fit(x, t_x, T), 3)
    row: dict[str, Any] = {
        "case": name,
        "customers": int(x.size),
        "ours_s": ours_s,
        "params": model.params_,
        "log_likelihood": model.log_likelihood_,
    }
    if peer:
        import lifetimes

        try:
            peer_s, fitted = _timed(lambda: lifetimes.BetaGeoFitter().fit(x, t_x, T))
            row |= {"lifetimes_s": peer_s, "lifetimes_params": fitted.params_.to_dict()}
            row["ratio"] = peer_s / ours_s
        except Exception as error:  # lifetimes' ConvergenceError and friends: recorded
            row["lifetimes_error"] = f"{type(error).__name__}: {error}"[:300]
    print(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--purchases", type=int, default=10_000_000)
    args = parser.parse_args()
    rows = []
    small = rfm(simulate_purchases(100_000, seed=2).lazy(), as_of=AS_OF).collect()
    BetaGeo().fit(*(small[c].to_numpy() for c in ("frequency", "recency", "T")))  # compiles
    rows.append(
        _fit_row(
            "BG/NBD fit, 100k customers",
            *(small[c].to_numpy() for c in ("frequency", "recency", "T")),
            peer=True,
        )
    )

    purchases = simulate_purchases(int(args.purchases / 1.92), seed=3)
    ours_s, summary = _timed(lambda: rfm(purchases.lazy(), as_of=AS_OF).collect(), 3)
    peer_s, _ = _timed(lambda: _lifetimes_summary(purchases))
    rfm_row = {
        "case": "rfm summary",
        "purchases": purchases.height,
        "customers": summary.height,
        "ours_s": ours_s,
        "lifetimes_s": peer_s,
        "ratio": peer_s / ours_s,
    }
    print(json.dumps(rfm_row))
    rows.append(rfm_row)
    rows.append(
        _fit_row(
            f"BG/NBD fit, {summary.height / 1e6:.1f}M customers",
            *(summary[c].to_numpy() for c in ("frequency", "recency", "T")),
            peer=False,
        )
    )

    from lifetimes.datasets import load_cdnow_summary

    cdnow = load_cdnow_summary(index_col=[0])
    tiled = [np.tile(cdnow[c].to_numpy(), 100) for c in ("frequency", "recency", "T")]
    rows.append(_fit_row("CDNOW tiled 100 times", *tiled, peer=True))
    RESULTS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
