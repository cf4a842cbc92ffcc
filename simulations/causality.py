"""The look-ahead check: a strategy's position on bar ``t`` may depend on closes up to ``t`` only.

Gate 1 runs it on the data a trial is evaluated on (the backtest window with the history
before it) before anything is measured. At sampled cut points ``c`` of the window it probes
the strategy two ways:

* **prefix**: the positions computed from the bars up to ``c`` alone must equal the full
  series' positions on those bars;
* **perturbed future**: with every bar after ``c`` changed, the positions on bars ``0..c``
  must not change. Each later log return has its sign flipped and its size scaled by a
  seeded factor (:data:`CAUSALITY_PERTURBATION_SCALE`): a rule that peeks at the direction
  of a later move sees it reversed, one that peeks at its size sees it changed.

Equality is bit for bit, the contract the paper venue relies on (streaming equals batch: a
position does not change, not even by rounding, when later bars are appended). The cut
points are stratified (one drawn in each of ``n_cuts`` equal parts of the window) and
seeded, so a trial is probed at the same bars whenever it is evaluated. Every probe is a
whole series through the strategy's vectorised positions, never a bar-by-bar replay: the
check costs ``2 * n_cuts + 1`` evaluations of the strategy, a few per cent of a trial's
evaluation (one series at a time, which measured faster than stacking them along the
leading axis and keeps memory at one series).

A sample of cut points cannot prove causality. It catches a rule that peeks on every bar
(at the next bar's move, at the series' last price, at a statistic of the whole series) at
its first cut, and one that peeks now and then with a probability that grows with
``n_cuts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel

from simulations.constants import CAUSALITY_CUTS, CAUSALITY_PERTURBATION_SCALE, CAUSALITY_SEED
from simulations.errors import ConfigurationError, EvaluationError, LookAheadError, MarketDataError
from simulations.strategies import Strategy

Probe = Literal["prefix", "perturbed future"]


@dataclass(frozen=True)
class LookAhead:
    """Where a strategy was caught looking ahead.

    Attributes
    ----------
    strategy
        The strategy's registry name.
    bar
        The first bar whose position differs, as an index into the series the strategy was
        given (its history, then the evaluated window).
    window_start
        Index of the evaluated window's first bar in that series (bars of history).
    n_bars
        Bars in that series.
    cut
        The cut point that exposed it: the bars after it were left out or changed.
    probe
        ``"prefix"`` (the strategy saw bars ``0..cut`` only) or ``"perturbed future"``.
    full_position, probe_position
        The position on ``bar`` given the full series and given the probe (fraction of equity).
    """

    strategy: str
    bar: int
    window_start: int
    n_bars: int
    cut: int
    probe: Probe
    full_position: float
    probe_position: float

    def message(self) -> str:
        """What the error says: the strategy, the first bar that differs and how it was found."""
        if self.bar >= self.window_start:
            where = f"bar {self.bar - self.window_start} of the evaluated window"
        else:
            where = f"bar {self.bar} of the warm-up history before the evaluated window"
        how = (
            f"it is given only the first {self.cut + 1} bars"
            if self.probe == "prefix"
            else f"the bars after bar {self.cut} are changed"
        )
        return (
            f"look-ahead in strategy {self.strategy!r}: its position on {where} (bar {self.bar} of the "
            f"{self.n_bars} bars it was given) depends on later bars, the first bar that differs: "
            f"{self.full_position!r} given the full series, {self.probe_position!r} when {how}. "
            "A position on bar t may use closes up to "
            "bar t only (it is traded from bar t + 1); fix the strategy, none of its trials can be evaluated "
            "until then"
        )


def _cut_points(window_start: int, n_bars: int, n_cuts: int, rng: np.random.Generator) -> np.ndarray:
    """Stratified cut points in the window, each with at least one later bar, sorted and distinct.

    The candidates are bars ``window_start .. n_bars - 2``, split into ``n_cuts`` equal strata
    with one cut drawn uniformly in each; a window with no more candidates than ``n_cuts``
    is cut at every candidate.
    """
    first, last = window_start, n_bars - 2
    if last - first + 1 <= n_cuts:
        return np.arange(first, last + 1, dtype=np.int64)
    edges = np.linspace(first, last + 1, n_cuts + 1).astype(np.int64)
    return rng.integers(edges[:-1], edges[1:]).astype(np.int64)


def _validated_series(close: np.ndarray, history: np.ndarray | None) -> tuple[np.ndarray, int]:
    window = np.asarray(close, dtype=np.float64)
    past = np.empty(0) if history is None else np.asarray(history, dtype=np.float64)
    if window.ndim != 1 or window.size < 2:
        raise EvaluationError(f"the look-ahead check needs a window of shape (n_bars,) with n_bars >= 2, got {window.shape}")
    if past.ndim != 1:
        raise EvaluationError(f"the look-ahead check needs a history of shape (n_history,), got {past.shape}")
    series = np.concatenate([past, window])
    bad = ~(np.isfinite(series) & (series > 0))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise MarketDataError(f"close must be finite and > 0 (price units); got {series[index]!r} at bar {index} (history first)")
    return series, past.size


def _positions(strategy: Strategy, params: BaseModel, close: np.ndarray) -> np.ndarray:
    positions = np.asarray(strategy.positions(close=close, params=params), dtype=np.float64)
    if positions.shape != close.shape:
        raise EvaluationError(
            f"strategy {strategy.name!r} returned positions of shape {positions.shape} for closes of shape "
            f"{close.shape}; positions must have the shape of close"
        )
    return positions


def _differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit-for-bit inequality, except that NaN equals NaN (the backtester reports NaN positions itself)."""
    return (a != b) & ~(np.isnan(a) & np.isnan(b))


def _validated_settings(n_cuts: int, seed: int) -> None:
    if isinstance(n_cuts, bool) or not isinstance(n_cuts, int | np.integer) or n_cuts < 1:
        raise ConfigurationError(f"n_cuts must be an integer >= 1 (cut points per check), got {n_cuts!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")


def find_look_ahead(
    *,
    strategy: Strategy,
    params: BaseModel,
    close: np.ndarray,
    history: np.ndarray | None = None,
    n_cuts: int = CAUSALITY_CUTS,
    seed: int = CAUSALITY_SEED,
) -> LookAhead | None:
    """Probe ``strategy`` for look-ahead on ``history`` followed by ``close``.

    Parameters
    ----------
    strategy, params
        From :meth:`simulations.strategies.StrategyRegistry.build`.
    close
        Close prices of the evaluated window (price units, > 0), shape ``(n_bars,)``, ``n_bars >= 2``.
    history
        Close prices before the window (price units), shape ``(n_history,)``, or ``None``:
        what the strategy's indicators warm up on, as in
        :func:`simulations.backtest.backtest_strategy`.
    n_cuts
        Cut points, one per stratum of the window.
    seed
        Seed of the cut points and of the perturbation.

    Returns
    -------
    LookAhead or None
        The violation with the earliest differing bar (ties: the earlier cut, prefix first),
        or ``None`` when every probe agrees with the full series.

    Raises
    ------
    MarketDataError
        Non-finite or non-positive prices.
    EvaluationError
        A window shorter than 2 bars, or positions whose shape is not the closes' shape.
    ConfigurationError
        ``n_cuts < 1`` or a negative seed.
    """
    _validated_settings(n_cuts, seed)
    series, start = _validated_series(close, history)
    rng = np.random.default_rng(seed)
    cuts = _cut_points(start, series.size, n_cuts, rng)
    full = _positions(strategy, params, series)
    low, high = CAUSALITY_PERTURBATION_SCALE
    log_returns = np.diff(np.log(series))

    found: list[LookAhead] = []
    for cut in (int(c) for c in cuts):
        perturbed = series.copy()
        later = log_returns[cut:]
        # The later moves reversed and rescaled: prices stay positive, finite and on the data's scale.
        perturbed[cut + 1 :] = series[cut] * np.exp(np.cumsum(-later * rng.uniform(low, high, later.size)))
        probes: tuple[tuple[Probe, np.ndarray], ...] = (
            ("prefix", series[: cut + 1]),
            ("perturbed future", perturbed),
        )
        for probe, probe_close in probes:
            positions = _positions(strategy, params, probe_close)[: cut + 1]
            differ = np.flatnonzero(_differ(positions, full[: cut + 1]))
            if differ.size:
                bar = int(differ[0])
                found.append(
                    LookAhead(
                        strategy=strategy.name, bar=bar, window_start=start, n_bars=series.size, cut=cut, probe=probe,
                        full_position=float(full[bar]), probe_position=float(positions[bar]),
                    )
                )
    return min(found, key=lambda v: (v.bar, v.cut, v.probe != "prefix"), default=None)


def check_causality(
    *,
    strategy: Strategy,
    params: BaseModel,
    close: np.ndarray,
    history: np.ndarray | None = None,
    n_cuts: int = CAUSALITY_CUTS,
    seed: int = CAUSALITY_SEED,
) -> None:
    """Raise :class:`LookAheadError` when :func:`find_look_ahead` catches ``strategy`` looking ahead.

    Same parameters as :func:`find_look_ahead`.

    Raises
    ------
    LookAheadError
        Naming the strategy, the first bar whose position differs and the probe that found it.
    """
    found = find_look_ahead(strategy=strategy, params=params, close=close, history=history, n_cuts=n_cuts, seed=seed)
    if found is not None:
        raise LookAheadError(found.message())
