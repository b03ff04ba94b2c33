"""BG/NBD (Fader, Hardie & Lee 2005): how many more purchases, and is the customer alive.

While alive a customer buys at rate lambda ~ Gamma(r, alpha); after each repeat purchase they
drop out with probability p ~ Beta(a, b). Inputs per customer are lifetimes' (frequency x =
repeat purchase periods, recency t_x, age T), in periods. The log-likelihood (FHL 2005, eq. 6):

    A1 = lnG(r + x) - lnG(r) + r ln(alpha)
    A2 = lnG(a + b) + lnG(b + x) - lnG(b) - lnG(a + b + x)
    A3 = -(r + x) ln(alpha + T)
    A4 = ln(a) - ln(b + x - 1) - (r + x) ln(alpha + t_x)        (x > 0 only)
    LL = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4))
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln, hyp2f1

from engine.clv.likelihood import ModelFitError, grouped, maximise

PARAMS = ("r", "alpha", "a", "b")


def _loglik(params: np.ndarray, data: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood and its gradient in (r, alpha, a, b)."""
    r, alpha, a, b = params
    x, t_x, T = data
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1, 1.0)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(repeat, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    both = np.logaddexp(a3, a4)
    w4 = np.exp(a4 - both)  # the dropped-out branch's share
    w3 = 1.0 - w4
    ll = (
        gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        + gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
        + both
    )  # fmt: skip
    d_r = (
        digamma(r + x) - digamma(r) + np.log(alpha)
        - w3 * np.log(alpha + T) - w4 * np.log(alpha + t_x)
    )  # fmt: skip
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_ab = digamma(a + b) - digamma(a + b + x)
    d_a = d_ab + w4 / a
    d_b = d_ab + digamma(b + x) - digamma(b) - w4 / bx1
    return ll, np.vstack([d_r, d_alpha, d_a, d_b])


class BetaGeo:
    """The BG/NBD model, fitted by maximum likelihood (lifetimes' ``BetaGeoFitter`` names).

    Attributes (after ``fit``):
        params_: {"r", "alpha", "a", "b"}.
        log_likelihood_: the total log-likelihood (not the mean).
        standard_errors_: {"r", ...}, from the inverse Hessian of the total.
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        if penalizer < 0:
            raise ModelFitError(f"penalizer must be >= 0, got {penalizer}")
        self.penalizer = penalizer

    def fit(
        self,
        frequency: np.ndarray,
        recency: np.ndarray,
        T: np.ndarray,  # noqa: N803 (the model's name for it)
        weights: np.ndarray | None = None,
    ) -> BetaGeo:
        x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
        if x.size == 0:
            raise ModelFitError("BG/NBD: no customers to fit. Hint: check the purchases and as_of")
        bad = (x < 0) | (t_x < 0) | (t_x > age) | ((x == 0) & (t_x != 0)) | ~np.isfinite(age)
        if bad.any():
            raise ModelFitError(
                f"BG/NBD: {int(bad.sum())} customers with inconsistent frequency/recency/T "
                "(need 0 <= recency <= T, recency = 0 without repeats). Hint: build them with rfm()"
            )
        if not (x > 0).any():
            raise ModelFitError(
                "BG/NBD: no customer bought twice, so the repeat-purchase process cannot be "
                "identified. Hint: use a longer window (or an earlier as_of)"
            )
        *data, w = grouped(x, t_x, age, weights=weights)
        start = np.array([1.0, max(float(np.average(data[2], weights=w)), 1e-3), 1.0, 1.0])
        fit = maximise(_loglik, tuple(data), w, start, self.penalizer, "BG/NBD")
        self.params_ = dict(zip(PARAMS, fit.params.tolist(), strict=True))
        self.log_likelihood_ = fit.log_likelihood
        self.standard_errors_ = dict(zip(PARAMS, fit.standard_errors.tolist(), strict=True))
        self.iterations_ = fit.iterations
        return self

    def _p(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise ModelFitError("BG/NBD: call fit() first")
        return self.params_["r"], self.params_["alpha"], self.params_["a"], self.params_["b"]

    def expected_purchases_new(self, t: float | np.ndarray) -> np.ndarray:
        """E[X(t)]: purchases of a new customer in ``t`` periods (FHL eq. 9)."""
        r, alpha, a, b = self._p()
        t = np.asarray(t, dtype=np.float64)
        hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)

    def expected_purchases(
        self,
        t: float | np.ndarray,
        frequency: np.ndarray,
        recency: np.ndarray,
        T: np.ndarray,  # noqa: N803
    ) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: purchases in the next ``t`` periods (FHL eq. 10): what a
        customer alive now would buy, times P(alive)."""
        r, alpha, a, b = self._p()
        x, age = np.asarray(frequency, dtype=np.float64), np.asarray(T, dtype=np.float64)
        t = np.asarray(t, dtype=np.float64)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + age + t))
        if_alive = (
            (a + b + x - 1) / (a - 1) * (1 - ((alpha + age) / (alpha + age + t)) ** (r + x) * hyp)
        )
        return if_alive * self.p_alive(frequency, recency, T)

    def p_alive(
        self,
        frequency: np.ndarray,
        recency: np.ndarray,
        T: np.ndarray,  # noqa: N803
    ) -> np.ndarray:
        """P(alive | x, t_x, T) (FHL eq. 11): 1 for customers without repeat purchases."""
        r, alpha, a, b = self._p()
        x, t_x, age = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
        log_odds = (
            np.log(a)
            - np.log(b + x - 1 + (x == 0))
            + (r + x) * np.log((alpha + age) / (alpha + t_x))
        )
        return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds)), 1.0)
