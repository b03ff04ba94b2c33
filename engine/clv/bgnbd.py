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
from scipy.special import digamma, gammaln, hyp2f1, polygamma

from engine.clv._kernels import bgnbd_row_hessian
from engine.clv.likelihood import LogLikHessian, grouped, newton, small_whole
from engine.exceptions import ConfigError, ModelFitError

PARAMS = ("r", "alpha", "a", "b")


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and each row's index into them (by counting for small whole numbers)."""
    if small_whole(values):
        whole = values.astype(np.int64)
        present = np.bincount(whole) > 0
        rank = np.cumsum(present) - 1
        return np.flatnonzero(present).astype(np.float64), rank[whole]
    distinct, index = np.unique(values, return_inverse=True)
    return distinct, index.ravel()


def _loglik(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, w: np.ndarray) -> LogLikHessian:  # noqa: N803
    """The weighted total log-likelihood, its gradient and Hessian in (r, alpha, a, b).

    Daily summaries hold few distinct frequencies, recencies and ages, so the special
    functions are evaluated once per distinct value; per row only the mixture of the alive
    and the dropped-out branches is left, summed in one pass (``_kernels``).
    """
    (ux, xi), (ut, ti), (uT, Ti) = (_codes(v) for v in (x, t_x, T))  # noqa: N806
    wx = np.bincount(xi, weights=w, minlength=ux.size)
    total = w.sum()

    def loglik(params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        r, alpha, a, b = params
        bx1 = np.where(ux > 0, b + ux - 1, 1.0)
        per_x = (
            gammaln(r + ux) - gammaln(r) + r * np.log(alpha)
            + gammaln(a + b) + gammaln(b + ux) - gammaln(b) - gammaln(a + b + ux)
        )  # fmt: skip
        s = bgnbd_row_hessian(
            xi, ti, Ti, w, r + ux, np.where(ux > 0, np.log(a) - np.log(bx1), -np.inf),
            1.0 / bx1, np.log(alpha + uT), np.log(alpha + ut), 1.0 / (alpha + uT),
            1.0 / (alpha + ut),
        )  # fmt: skip
        d_ab = digamma(a + b) - digamma(a + b + ux)
        gradient = np.array(
            [
                wx @ (digamma(r + ux) - digamma(r) + np.log(alpha)) - s[1],
                r / alpha * total - s[2],
                wx @ d_ab + s[3] / a,
                wx @ (d_ab + digamma(b + ux) - digamma(b)) - s[4],
            ]
        )
        q, qr, qa, qb, qrr, qra, qaa, qrb, qab, qbb = s[8:18]
        t_ab = wx @ (polygamma(1, a + b) - polygamma(1, a + b + ux))
        t_b = wx @ (polygamma(1, b + ux) - polygamma(1, b))
        hessian = np.empty((4, 4))
        hessian[0] = [
            qrr + wx @ (polygamma(1, r + ux) - polygamma(1, r)),
            -s[5] + qra + total / alpha,
            -qr / a,
            qrb,
        ]
        hessian[1, 1:] = [s[6] + qaa - r * total / alpha**2, -qa / a, qab]
        hessian[2, 2:] = [(q - s[3]) / a**2 + t_ab, -qb / a + t_ab]
        hessian[3, 3] = s[7] + qbb + t_ab + t_b
        upper = np.triu_indices(4, 1)
        hessian[(upper[1], upper[0])] = hessian[upper]
        return float(wx @ per_x + s[0]), gradient, hessian

    return loglik


class BetaGeo:
    """The BG/NBD model, fitted by maximum likelihood (lifetimes' ``BetaGeoFitter`` names).

    Attributes (after ``fit``):
        params_: {"r", "alpha", "a", "b"}.
        log_likelihood_: the total log-likelihood (not the mean).
        standard_errors_: {"r", ...}, from the inverse Hessian of the total.
    """

    def __init__(self, penalizer: float = 0.0) -> None:
        if penalizer < 0:
            raise ConfigError.out_of_range("penalizer", ">= 0", penalizer)
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
        gx, gt, gT, w = grouped(x, t_x, age, weights=weights)  # noqa: N806
        start = np.array([1.0, max(float(np.average(gT, weights=w)), 1e-3), 1.0, 1.0])
        fit = newton(_loglik(gx, gt, gT, w), w.sum(), start, self.penalizer, "BG/NBD")
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
