"""Maximum likelihood for the CLV models: identical rows grouped, log-scale parameters, an
analytic gradient, and standard errors from the Hessian.

Each model supplies ``loglik(params) -> (total log-likelihood, its gradient with respect to
params)`` over its grouped rows; here it is maximised over log(params), with lifetimes'
penalizer (``penalizer * sum(params ** 2)`` added to the mean negative log-likelihood), so a
lifetimes user gets the same estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from engine.exceptions import ModelFitError

GRADIENT_TOLERANCE = 1e-6  # of the mean log-likelihood, per log-parameter
LogLik = Callable[[np.ndarray], tuple[float, np.ndarray]]
# params -> (total log-likelihood, gradient, Hessian), all with respect to params
LogLikHessian = Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]]
NEWTON_ITERATIONS = 100
MAX_LOG_STEP = 1.0
NEWTON_TOLERANCE = 1e-9  # Newton converges quadratically: ask for more than L-BFGS-B can
DECREMENT_FLOOR = 1e-16  # of the mean negative log-likelihood (a few units): its rounding


@dataclass(frozen=True)
class Fit:
    params: np.ndarray
    log_likelihood: float  # the weighted total
    standard_errors: np.ndarray
    iterations: int


def grouped(*columns: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The distinct rows of ``columns`` (sorted) and their total weight (1 per row unless
    given). Daily summaries hold whole numbers: those are packed into one integer key, which
    sorts several times faster than the columns one by one."""
    cols = [np.asarray(c, dtype=np.float64) for c in columns]
    w = np.ones(cols[0].size) if weights is None else np.asarray(weights, dtype=np.float64)
    if cols[0].size == 0:
        return (*cols, w)
    key = _packed_key(cols)
    order = np.argsort(key) if key is not None else np.lexsort(cols[::-1])
    ordered = [c[order] for c in cols]
    change = np.zeros(ordered[0].size, dtype=bool)
    change[0] = True
    for c in ordered:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    return (*(c[starts] for c in ordered), np.add.reduceat(w[order], starts))


def small_whole(values: np.ndarray) -> bool:
    """Every value a whole number in [0, 2^20): daily counts and ages, which can be counted
    or packed into integer keys instead of sorted as floats."""
    return bool(
        values.size
        and values.min() >= 0
        and values.max() < 2**20
        and (values == np.floor(values)).all()
    )


def _packed_key(cols: list[np.ndarray]) -> np.ndarray | None:
    """One int64 that orders rows as the columns do, when every value is a small whole number."""
    if not all(small_whole(c) for c in cols):
        return None
    spans = [int(c.max()) + 1 for c in cols]
    key = np.zeros(cols[0].size, dtype=np.int64)
    for c, span in zip(cols, spans, strict=True):
        key = key * span + c.astype(np.int64)
    return key if np.prod([float(s) for s in spans]) < 2**62 else None


def _hessian(grad: Callable[[np.ndarray], np.ndarray], params: np.ndarray) -> np.ndarray:
    """Central differences of the analytic gradient (relative steps), symmetrised."""
    n = params.size
    hess = np.empty((n, n))
    for i in range(n):
        step = 1e-5 * max(abs(params[i]), 1e-8)
        up, down = params.copy(), params.copy()
        up[i] += step
        down[i] -= step
        hess[i] = (grad(up) - grad(down)) / (2 * step)
    return (hess + hess.T) / 2


def maximise(
    loglik: LogLik, total_weight: float, start: np.ndarray, penalizer: float, model: str
) -> Fit:
    """Maximum (penalised) likelihood estimates of positive parameters."""

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, grad = loglik(params)
        value = -ll / total_weight + penalizer * (params**2).sum()
        gradient = -grad / total_weight + 2 * penalizer * params
        return float(value), gradient * params  # chain rule: d/dlog(p) = p d/dp

    with np.errstate(all="ignore"):
        result = minimize(
            objective,
            np.log(start),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
        )
    params = np.exp(result.x)
    # The tolerances ask for the last digits: a line search that cannot improve on them ends
    # "abnormally" at the optimum, which the gradient shows.
    stationary = np.abs(result.jac).max() < GRADIENT_TOLERANCE
    converged = result.success or stationary
    if not (converged and np.isfinite(result.fun) and np.isfinite(params).all()):
        raise ModelFitError(
            f"{model}: the fit did not converge ({result.message}). "
            "Hint: add a penalizer (for example 0.001) or use more customers"
        )
    with np.errstate(all="ignore"):
        hess = _hessian(lambda p: -loglik(p)[1], params)
        try:
            errors = np.sqrt(np.diag(np.linalg.inv(hess)))
        except np.linalg.LinAlgError:
            errors = np.full(params.size, np.nan)
    return Fit(params, float(loglik(params)[0]), errors, int(result.nit))


def newton(
    loglik: LogLikHessian, total_weight: float, start: np.ndarray, penalizer: float, model: str
) -> Fit:
    """Maximum (penalised) likelihood by Newton's method on log(params), with an exact
    Hessian: a step solves H d = -g (H shifted until it is positive definite, far from the
    optimum), then backtracks until the objective falls. Far fewer iterations than a
    quasi-Newton method, and the same Hessian gives the standard errors. Should the
    steps stall short of the optimum (a flat likelihood, float precision), L-BFGS-B takes over
    from where they stopped."""
    last: dict[str, tuple[float, np.ndarray, np.ndarray]] = {}

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        p = np.exp(log_params)
        ll, grad, hess = last["raw"] = loglik(p)
        value = -ll / total_weight + penalizer * (p**2).sum()
        g_p = -grad / total_weight + 2 * penalizer * p
        h_p = -hess / total_weight + 2 * penalizer * np.eye(p.size)
        return value, p * g_p, p[:, None] * h_p * p[None, :] + np.diag(p * g_p)

    theta = np.log(start)
    with np.errstate(all="ignore"):
        value, gradient, hessian = objective(theta)
        raw = last["raw"]
        iterations = 0
        while np.abs(gradient).max() >= NEWTON_TOLERANCE and iterations < NEWTON_ITERATIONS:
            iterations += 1
            step = _newton_step(gradient, hessian)
            if -(gradient @ step) < DECREMENT_FLOOR:
                break  # the next step would gain less than the objective's rounding
            # at most a factor e per parameter per step: far from the optimum the quadratic
            # model can point absurdly far, where the likelihood is only rounding noise
            step *= min(1.0, MAX_LOG_STEP / np.abs(step).max())
            length, accepted = 1.0, False
            for _ in range(40):
                trial = objective(theta + length * step)
                if np.isfinite(trial[0]) and trial[0] <= value + 1e-4 * length * (gradient @ step):
                    accepted = True
                    break
                length /= 2
            if not accepted:
                break
            theta = theta + length * step
            value, gradient, hessian = trial
            raw = last["raw"]
    params = np.exp(theta)
    if not (np.abs(gradient).max() < GRADIENT_TOLERANCE and np.isfinite(params).all()):
        polished = maximise(lambda p: loglik(p)[:2], total_weight, params, penalizer, model)
        params, iterations = polished.params, iterations + polished.iterations
        raw = loglik(params)
    ll, _, hess = raw
    with np.errstate(all="ignore"):
        try:
            errors = np.sqrt(np.diag(np.linalg.inv(-hess)))
        except np.linalg.LinAlgError:
            errors = np.full(params.size, np.nan)
    return Fit(params, float(ll), errors, iterations)


def _newton_step(gradient: np.ndarray, hessian: np.ndarray) -> np.ndarray:
    """-H^-1 g, with H shifted (Levenberg) until it is positive definite: a descent step."""
    shift = 0.0
    while True:
        try:
            factor = np.linalg.cholesky(hessian + shift * np.eye(gradient.size))
            break
        except np.linalg.LinAlgError:
            shift = max(2 * shift, 1e-6 * max(1.0, float(np.abs(hessian).max())))
    return -np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
