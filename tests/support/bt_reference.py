"""An independent Bradley-Terry reference for tests and benchmarks: FastChat's model fitted the
slow way, with no code shared with `arena.bradley_terry`."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from arena.ratings import Battles


def scipy_reference_elo(battles: Battles) -> np.ndarray:
    """Every battle its own log-likelihood term (a tie is half a win and half a loss), scipy
    L-BFGS, Elo scale with the mean at 1000."""
    score = np.array([1.0, 0.0, 0.5, 0.5])[battles.outcome]
    a, b, m = battles.a, battles.b, len(battles.models)
    alpha = math.log(10.0)

    def loss_and_grad(r: np.ndarray) -> tuple[float, np.ndarray]:
        d = alpha * (r[a] - r[b])
        loss = -(score * log_expit(d) + (1.0 - score) * log_expit(-d)).sum()
        g = -alpha * (score - expit(d))
        return float(loss), np.bincount(a, g, m) - np.bincount(b, g, m)

    result = minimize(
        loss_and_grad,
        np.zeros(m),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-11, "ftol": 1e-16, "maxiter": 20_000},
    )
    return 400.0 * (result.x - result.x.mean()) + 1000.0
