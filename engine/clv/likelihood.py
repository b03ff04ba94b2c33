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
import polars as pl
from scipy.optimize import minimize

from engine.exceptions import ConfigError

GRADIENT_TOLERANCE = 1e-6  # of the mean log-likelihood, per log-parameter
LogLik = Callable[[np.ndarray], tuple[float, np.ndarray]]


class ModelFitError(ConfigError):
    """The data cannot identify the model, or the optimiser did not converge."""


@dataclass(frozen=True)
class Fit:
    params: np.ndarray
    log_likelihood: float  # the weighted total
    standard_errors: np.ndarray
    iterations: int


def grouped(*columns: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The distinct rows of ``columns`` and their total weight (1 per row unless given)."""
    frame = pl.DataFrame(
        {f"c{i}": np.asarray(c, dtype=np.float64) for i, c in enumerate(columns)}
        | {"w": np.ones(len(columns[0])) if weights is None else np.asarray(weights, np.float64)}
    )
    rows = frame.group_by(frame.columns[:-1]).agg(pl.col("w").sum()).sort(frame.columns[:-1])
    return tuple(rows[c].to_numpy() for c in rows.columns)


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
