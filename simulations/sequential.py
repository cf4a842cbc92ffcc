"""An always-valid sequential test that a paper session's Sharpe ratio exceeds a floor.

A paper session is looked at again and again (each market day, each sync); a fixed-horizon
test repeated at every look would promote a worthless strategy far more often than its level
says. This test is an *e-process*: a nonnegative process that, under the null hypothesis, is a
supermartingale starting at 1, so by Ville's inequality the chance that it *ever* reaches
``1 / alpha`` is at most ``alpha``, however often and for however long it is looked at. A
session is decided in favour of the strategy at its first look with ``e >= 1 / alpha``.

The null hypothesis is that the strategy's Sharpe ratio per look is at most the floor. Each
look's return is standardised by the root mean square of the returns before it (a predictable
scale, so the construction stays a supermartingale) after ``burn_in`` looks that only estimate
that scale, and shifted by the floor: ``z_i = r_i / s_{i-1} - floor``. For increments that are
conditionally symmetric about a mean at most 0, ``exp(lambda S_t - lambda**2 V_t / 2)`` with
``S_t = sum z_i`` and ``V_t = sum z_i**2`` is a supermartingale for every ``lambda >= 0``
(de la Peña 1999); mixing ``lambda`` over a half-normal of precision ``rho`` gives the
closed form used here (Howard, Ramdas, McAuliffe and Sekhon 2021, the one-sided normal
mixture)::

    e_t = 2 sqrt(rho / (V_t + rho)) exp(S_t**2 / (2 (V_t + rho))) Phi(S_t / sqrt(V_t + rho))

The same construction with the increments' sign flipped (``alternative="less"``) tests the
opposite null, "the Sharpe ratio is at least the floor": reaching ``1 / alpha`` there shows
the strategy is below the floor (a futility bound), with the same guarantee for a strategy
that is in fact at or above it.

Returns are not exactly symmetric and the scale is estimated, so the guarantee is
approximate; ``tests/simulations/test_sequential.py`` measures the false positive rate at
every look on heavy-tailed nulls at the floor, in both directions.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from scipy.special import log_ndtr

from simulations.constants import SEQUENTIAL_BURN_IN_LOOKS, SEQUENTIAL_PRIOR_PRECISION
from simulations.errors import EvaluationError

#: Largest log e-value kept: beyond it the evidence is overwhelming and ``exp`` would overflow.
_MAX_LOG_E_VALUE = math.log(np.finfo(float).max) - 1.0


def sharpe_e_values(
    *,
    returns: np.ndarray,
    sharpe_floor: float,
    periods_per_year: float,
    burn_in: int = SEQUENTIAL_BURN_IN_LOOKS,
    prior_precision: float = SEQUENTIAL_PRIOR_PRECISION,
    alternative: Literal["greater", "less"] = "greater",
) -> np.ndarray:
    """The e-value after each look of the test "annualised Sharpe ratio > ``sharpe_floor``"
    (or, with ``alternative="less"``, "< ``sharpe_floor``").

    Parameters
    ----------
    returns
        One return per look (fraction, e.g. per market day), shape ``(..., n_looks)``; leading
        axes are independent sessions.
    sharpe_floor
        The null hypothesis' largest annualised Sharpe ratio (per year, >= 0).
    periods_per_year
        Looks per year (e.g. market days per year), to turn the floor into one per look.
    burn_in
        Leading looks that only estimate the returns' scale; their e-value is 1.
    prior_precision
        Precision of the half-normal mixing distribution, in units of the standardised
        increments' squared sum: larger waits longer and then decides more sharply.
    alternative
        ``"greater"``: evidence that the Sharpe ratio exceeds the floor (promotion);
        ``"less"``: evidence that it is below the floor (futility).

    Returns
    -------
    numpy.ndarray
        E-values (>= 0, 1 before any evidence, finite: overwhelming evidence is capped near
        the largest float), the shape of ``returns``.

    Raises
    ------
    EvaluationError
        If ``returns`` holds a non-finite value, or a parameter is out of range.
    """
    r = np.asarray(returns, dtype=float)
    if r.ndim == 0 or not np.isfinite(r).all():
        raise EvaluationError(f"returns must be a finite array with one value per look, got shape {r.shape}")
    for name, value, low in (("sharpe_floor", sharpe_floor, 0.0), ("prior_precision", prior_precision, None)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise EvaluationError(f"{name} must be a finite number, got {value!r}")
        if (low is not None and value < low) or (low is None and value <= 0):
            raise EvaluationError(f"{name} must be {'>= 0' if low is not None else '> 0'}, got {value!r}")
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, int | float) or not periods_per_year > 0:
        raise EvaluationError(f"periods_per_year must be > 0, got {periods_per_year!r}")
    if alternative not in ("greater", "less"):
        raise EvaluationError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    if isinstance(burn_in, bool) or not isinstance(burn_in, int) or burn_in < 1:
        raise EvaluationError(f"burn_in must be an integer >= 1 (the first look has no scale yet), got {burn_in!r}")
    n = r.shape[-1]
    mean_square = np.cumsum(r * r, axis=-1) / np.arange(1, n + 1)
    # The scale look i is standardised by: the RMS of the looks before it, known before it is.
    previous = np.concatenate([np.full(r.shape[:-1] + (1,), np.nan), np.sqrt(mean_square[..., :-1])], axis=-1)
    counted = np.arange(n) >= burn_in
    usable = counted & (previous > 0)
    z = np.zeros_like(r)
    floor = sharpe_floor / math.sqrt(periods_per_year)
    np.divide(r, previous, out=z, where=usable)
    z = np.where(usable, z - floor, 0.0)
    if alternative == "less":
        z = -z
    s, v = np.cumsum(z, axis=-1), np.cumsum(z * z, axis=-1)
    d = v + prior_precision
    log_e = math.log(2.0) + 0.5 * np.log(prior_precision / d) + s * s / (2.0 * d) + log_ndtr(s / np.sqrt(d))
    return np.exp(np.minimum(log_e, _MAX_LOG_E_VALUE))


def first_crossing(*, e_values: np.ndarray, threshold: float) -> int | None:
    """The first look (0-based) whose e-value reaches ``threshold``, or None if none does.

    Raises
    ------
    EvaluationError
        If ``e_values`` is not one session's 1-d array or ``threshold`` is not > 1.
    """
    e = np.asarray(e_values, dtype=float)
    if e.ndim != 1:
        raise EvaluationError(f"e_values must be one session's 1-d array, got shape {e.shape}")
    if not threshold > 1:
        raise EvaluationError(f"threshold must be > 1 (1 / alpha), got {threshold!r}")
    hits = np.flatnonzero(e >= threshold)
    return int(hits[0]) if hits.size else None
