"""Numba kernel for the BG/NBD likelihood: one pass over the grouped rows.

The per-value parts (special functions of the distinct frequencies, logs of the distinct
ages and recencies) come in as small tables; per row only the mixture of the alive and the
dropped-out branches is left, summed with the row weights in row order (deterministic).
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def bgnbd_row_sums(
    xi, ti, age_i, w, rx_of, log_drop_of, inv_bx1_of, log_age, log_last, inv_age, inv_last
):  # noqa: E501
    """Weighted sums over rows of: ln(e^A3 + e^A4), w3 ln(alpha+T) + w4 ln(alpha+t_x),
    (r+x)(w3/(alpha+T) + w4/(alpha+t_x)), w4 and w4/(b+x-1), where w4 is the dropped-out
    branch's share e^A4 / (e^A3 + e^A4) (0 without repeat purchases)."""
    both_sum = 0.0
    log_sum = 0.0
    alpha_sum = 0.0
    w4_sum = 0.0
    w4_bx1_sum = 0.0
    for i in range(xi.size):
        x, T, t = xi[i], age_i[i], ti[i]
        rx = rx_of[x]
        a3 = -rx * log_age[T]
        wi = w[i]
        if np.isfinite(log_drop_of[x]):
            a4 = log_drop_of[x] - rx * log_last[t]
            top = max(a3, a4)
            both = top + np.log1p(np.exp(-abs(a3 - a4)))
            w4 = np.exp(a4 - both)
        else:
            both = a3
            w4 = 0.0
        w3 = 1.0 - w4
        both_sum += wi * both
        log_sum += wi * (w3 * log_age[T] + w4 * log_last[t])
        alpha_sum += wi * rx * (w3 * inv_age[T] + w4 * inv_last[t])
        w4_sum += wi * w4
        w4_bx1_sum += wi * w4 * inv_bx1_of[x]
    return both_sum, log_sum, alpha_sum, w4_sum, w4_bx1_sum
