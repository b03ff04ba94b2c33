"""Numba kernel for the BG/NBD likelihood: one pass over the grouped rows.

The per-value parts (special functions of the distinct frequencies, logs of the distinct
ages and recencies) come in as small tables; per row only the mixture of the alive and the
dropped-out branches is left, summed in row order (deterministic). One thread: the kernel takes
milliseconds, less than waking a pool would cost on a busy machine.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def bgnbd_row_hessian(
    xi, ti, age_i, w, rx_of, log_drop_of, inv_bx1_of, log_age, log_last, inv_age, inv_last
):
    """Weighted sums over the grouped rows for the BG/NBD log-likelihood, its gradient and
    its Hessian in (r, alpha, a, b).

    Per row the mixture ln(e^A3 + e^A4) has gradient w3 d3 + w4 d4 and Hessian
    w3 H3 + w4 H4 + w3 w4 D D' (w4 = e^A4 / (e^A3 + e^A4), the dropped-out branch's share, 0
    without repeat purchases; D = d3 - d4). Returned, in order: the mixtures' sum; the
    gradient mixtures (ln, alpha, w4, w4/(b+x-1)); the second-derivative mixtures (r-alpha,
    alpha-alpha, w4/(b+x-1)^2); the weighted moments of D (1, r, alpha, b and their
    products), from which the caller assembles the matrix.
    """
    # scalar accumulators: numba keeps them in registers (an array would go through memory)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    q0 = qr = qa = qb = qrr = qra = qaa = qrb = qab = qbb = 0.0
    for i in range(xi.size):
        x, T, t = xi[i], age_i[i], ti[i]
        rx = rx_of[x]
        la = log_age[T]
        ia = inv_age[T]
        a3 = -rx * la
        wi = w[i]
        if np.isfinite(log_drop_of[x]):
            lt = log_last[t]
            it = inv_last[t]
            ib = inv_bx1_of[x]
            a4 = log_drop_of[x] - rx * lt
            # one exp for both the log-sum and the branch shares
            e = np.exp(-abs(a3 - a4))
            both = max(a3, a4) + np.log1p(e)
            w4 = 1.0 / (1.0 + e) if a4 >= a3 else e / (1.0 + e)
            w3 = 1.0 - w4
            q = wi * w3 * w4
            d_r = lt - la
            d_al = rx * (it - ia)
            s0 += wi * both
            s1 += wi * (w3 * la + w4 * lt)
            s2 += wi * rx * (w3 * ia + w4 * it)
            s3 += wi * w4
            s4 += wi * w4 * ib
            s5 += wi * (w3 * ia + w4 * it)
            s6 += wi * rx * (w3 * ia * ia + w4 * it * it)
            s7 += wi * w4 * ib * ib
            q0 += q
            qr += q * d_r
            qa += q * d_al
            qb += q * ib
            qrr += q * d_r * d_r
            qra += q * d_r * d_al
            qaa += q * d_al * d_al
            qrb += q * d_r * ib
            qab += q * d_al * ib
            qbb += q * ib * ib
        else:
            s0 += wi * a3
            s1 += wi * la
            s2 += wi * rx * ia
            s5 += wi * ia
            s6 += wi * rx * ia * ia
    return np.array([s0, s1, s2, s3, s4, s5, s6, s7, q0, qr, qa, qb, qrr, qra, qaa, qrb, qab, qbb])
