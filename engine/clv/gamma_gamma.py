"""Gamma-Gamma spend (Fader, Hardie & Lee 2005b) and discounted customer lifetime value.

Each transaction of a customer is worth z ~ Gamma(p, nu), and nu ~ Gamma(q, v) across
customers; it is fitted on repeat buyers (x > 0) from their mean spend m_x over x repeat
transactions (lifetimes' ``monetary_value``):

    LL = lnG(p x + q) - lnG(p x) - lnG(q) + q ln(v) + (p x - 1) ln(m_x) + p x ln(x)
         - (p x + q) ln(v + m_x x)
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from engine.clv.bgnbd import BetaGeo
from engine.clv.likelihood import LogLik, grouped, maximise
from engine.exceptions import ConfigError, ModelFitError

PARAMS = ("p", "q", "v")


def _loglik(x: np.ndarray, m: np.ndarray, w: np.ndarray) -> LogLik:
    """The weighted total log-likelihood and its gradient in (p, q, v)."""
    log_m, log_x = np.log(m), np.log(x)

    def loglik(params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, v = params
        px = p * x
        log_total = np.log(v + m * x)
        ll = (
            gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
            + (px - 1) * log_m + px * log_x - (px + q) * log_total
        )  # fmt: skip
        psi = digamma(px + q)
        gradient = np.array(
            [
                w @ (x * (psi - digamma(px) + log_m + log_x - log_total)),
                w @ (psi - digamma(q) + np.log(v) - log_total),
                w @ (q / v - (px + q) / (v + m * x)),
            ]
        )
        return float(w @ ll), gradient

    return loglik


class GammaGamma:
    """The Gamma-Gamma spend model (lifetimes' ``GammaGammaFitter`` names)."""

    def __init__(self, penalizer: float = 0.0) -> None:
        if penalizer < 0:
            raise ConfigError.out_of_range("penalizer", ">= 0", penalizer)
        self.penalizer = penalizer

    def fit(
        self, frequency: np.ndarray, monetary_value: np.ndarray, weights: np.ndarray | None = None
    ) -> GammaGamma:
        """Fit on the repeat buyers among the rows (the others carry no spend information)."""
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        repeat = x > 0
        if (m[repeat] <= 0).any():
            raise ModelFitError(
                "Gamma-Gamma: repeat buyers with a mean spend <= 0. "
                "Hint: drop zero-price purchases or fit on positive spend only"
            )
        if repeat.sum() < 2:
            raise ModelFitError(
                "Gamma-Gamma: fewer than two repeat buyers, so spend cannot be modelled. "
                "Hint: use a longer window"
            )
        w = None if weights is None else np.asarray(weights, dtype=np.float64)[repeat]
        gx, gm, counts = grouped(x[repeat], m[repeat], weights=w)
        loglik = _loglik(gx, gm, counts)
        fit = maximise(loglik, counts.sum(), np.ones(3), self.penalizer, "Gamma-Gamma")
        self.params_ = dict(zip(PARAMS, fit.params.tolist(), strict=True))
        self.log_likelihood_ = fit.log_likelihood
        self.standard_errors_ = dict(zip(PARAMS, fit.standard_errors.tolist(), strict=True))
        return self

    def expected_spend(self, frequency: np.ndarray, monetary_value: np.ndarray) -> np.ndarray:
        """E[Z | x, m_x]: the expected value of a customer's next transaction; the population
        mean p v / (q - 1) for customers without repeat purchases."""
        if not hasattr(self, "params_"):
            raise ModelFitError("Gamma-Gamma: call fit() first")
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        x = np.asarray(frequency, dtype=np.float64)
        m = np.asarray(monetary_value, dtype=np.float64)
        return p * (v + x * m) / (p * x + q - 1)


def clv(
    transactions: BetaGeo,
    spend: GammaGamma,
    frequency: np.ndarray,
    recency: np.ndarray,
    T: np.ndarray,  # noqa: N803
    monetary_value: np.ndarray,
    *,
    horizon: float,
    step: float = 30.0,
    discount_rate: float = 0.0,
) -> np.ndarray:
    """Discounted value over ``horizon`` periods: the expected purchases of each ``step``
    (from the BG/NBD) times the expected spend, discounted by (1 + discount_rate) per step
    (lifetimes' ``customer_lifetime_value`` with steps of ``step`` periods)."""
    if horizon <= 0 or step <= 0 or discount_rate < 0:
        raise ConfigError("clv: horizon and step must be > 0 and discount_rate >= 0")
    value = spend.expected_spend(frequency, monetary_value)
    total = np.zeros(np.shape(frequency))
    previous = np.zeros(np.shape(frequency))
    ends = np.append(np.arange(step, horizon, step), horizon)
    for i, end in enumerate(ends, start=1):
        upto = transactions.expected_purchases(end, frequency, recency, T)
        total += (upto - previous) * value / (1 + discount_rate) ** i
        previous = upto
    return total
