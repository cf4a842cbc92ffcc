"""Performance metrics of backtest returns, including the probabilistic and deflated Sharpe ratios.

Returns are per-bar simple returns (fractions of the previous bar's equity). Functions
marked "vectorised" accept shape ``(..., n)`` and reduce the last axis. Every edge case
has a defined, documented outcome; anything else raises :class:`EvaluationError`, and no
function returns NaN.

Edge cases
----------
* fewer than 2 returns: :class:`EvaluationError` (no sample variance).
* zero variance (std <= :data:`ZERO_STD_RELATIVE_TOLERANCE` x |mean|): Sharpe is 0.0 when
  the mean excess return is exactly 0 (e.g. a strategy that never trades, risk-free rate
  0); a constant non-zero excess return raises :class:`EvaluationError` (the ratio is
  unbounded, not a number to rank by). Skew and kurtosis of such a series are reported as
  0 and 3 (the normal reference), so PSR and DSR take their normal-returns form.
* Sortino with no return below the target, and Calmar with no drawdown: ``None``
  ("undefined"), or 0.0 when the numerator is 0 too.
* no trades: win rate 0.0 with ``n_trades == 0``; gates read ``n_trades``.
* total loss (equity <= 0): CAGR -1.0.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
# The standard normal's CDF and quantile: what scipy.stats.norm calls, without importing
# scipy.stats (≈0.6 s), which every command that reads a gate policy would pay.
from scipy.special import ndtr, ndtri

from simulations.backtest import BacktestResult
from simulations.constants import DEFAULT_TRACK_RECORD_CONFIDENCE, ZERO_STD_RELATIVE_TOLERANCE
from simulations.errors import EvaluationError


def _returns(returns: np.ndarray, name: str = "returns") -> np.ndarray:
    array = np.asarray(returns, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] < 2:
        raise EvaluationError(f"{name} need shape (..., n) with n >= 2, got {array.shape}: the window is too short")
    if not np.isfinite(array).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise EvaluationError(f"{name} have a non-finite value at index {index}")
    return array


def _out(values: np.ndarray) -> np.ndarray | float:
    if not np.isfinite(values).all():
        raise EvaluationError("a metric came out non-finite; inputs are outside the metric's domain")
    return float(values) if np.ndim(values) == 0 else values


def _positive_number(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not (math.isfinite(value) and value > 0):
        raise EvaluationError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _per_period_rate(risk_free_rate: float, periods_per_year: float) -> float:
    """Per-period rate compounding to ``risk_free_rate`` a year."""
    if isinstance(risk_free_rate, bool) or not isinstance(risk_free_rate, int | float | np.number):
        raise EvaluationError(f"risk_free_rate must be a number (annual fraction), got {risk_free_rate!r}")
    if not (math.isfinite(risk_free_rate) and risk_free_rate > -1.0):
        raise EvaluationError(f"risk_free_rate must be finite and > -1 (annual fraction), got {risk_free_rate!r}")
    return (1.0 + float(risk_free_rate)) ** (1.0 / periods_per_year) - 1.0


def total_return(*, returns: np.ndarray) -> np.ndarray | float:
    """Compounded return, vectorised.

    Parameters
    ----------
    returns
        Per-period simple returns (fractions), shape ``(..., n)``, ``n >= 2``.

    Returns
    -------
    float or numpy.ndarray
        ``prod(1 + r) - 1`` (fraction), shape ``(...)``.
    """
    return _out(np.prod(1.0 + _returns(returns), axis=-1) - 1.0)


def cagr(*, returns: np.ndarray, periods_per_year: float) -> np.ndarray | float:
    """Compound annual growth rate, vectorised.

    Parameters
    ----------
    returns
        Per-period simple returns (fractions), shape ``(..., n)``, ``n >= 2``.
    periods_per_year
        Periods per year (e.g. 8766 for hourly bars around the clock).

    Returns
    -------
    float or numpy.ndarray
        ``wealth ** (periods_per_year / n) - 1`` (fraction per year); -1.0 when the
        equity reached 0 or below (total loss).
    """
    array = _returns(returns)
    ppy = _positive_number(periods_per_year, "periods_per_year")
    wealth = np.prod(1.0 + array, axis=-1)
    growth = np.full(wealth.shape, -1.0)
    alive = wealth > 0
    growth[alive] = wealth[alive] ** (ppy / array.shape[-1]) - 1.0
    return _out(growth)


def annualised_volatility(*, returns: np.ndarray, periods_per_year: float) -> np.ndarray | float:
    """Sample standard deviation (ddof=1) times ``sqrt(periods_per_year)``, vectorised.

    Returns
    -------
    float or numpy.ndarray
        Volatility (fraction per square-root year), shape ``(...)``.
    """
    array = _returns(returns)
    ppy = _positive_number(periods_per_year, "periods_per_year")
    return _out(array.std(axis=-1, ddof=1) * math.sqrt(ppy))


def sharpe_ratio(*, returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0) -> np.ndarray | float:
    """Annualised Sharpe ratio of excess returns (ddof=1), vectorised.

    Parameters
    ----------
    returns
        Per-period simple returns (fractions), shape ``(..., n)``, ``n >= 2``.
    periods_per_year
        Periods per year; the per-period ratio is multiplied by its square root.
    risk_free_rate
        Annual risk-free rate (fraction), de-annualised geometrically per period.

    Returns
    -------
    float or numpy.ndarray
        Annualised Sharpe ratio, shape ``(...)``; 0.0 for a series with zero variance
        and zero mean excess return.

    Raises
    ------
    EvaluationError
        Fewer than 2 returns, non-finite values, or zero variance with a non-zero mean
        excess return (see the module's edge cases).
    """
    array = _returns(returns)
    ppy = _positive_number(periods_per_year, "periods_per_year")
    excess = array - _per_period_rate(risk_free_rate, ppy)
    mean = excess.mean(axis=-1)
    std = excess.std(axis=-1, ddof=1)
    flat = std <= ZERO_STD_RELATIVE_TOLERANCE * np.abs(mean)
    undefined = flat & (mean != 0.0)
    if undefined.any():
        index = tuple(int(i) for i in np.argwhere(undefined)[0]) if undefined.ndim else ()
        raise EvaluationError(
            f"Sharpe ratio undefined at index {index}: the excess return is a constant "
            f"{float(np.asarray(mean)[index]):.3g} per period (zero variance)"
        )
    ratio = np.zeros_like(mean)
    np.divide(mean, std, out=ratio, where=~flat)
    return _out(ratio * math.sqrt(ppy))


def sortino_ratio(*, returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0) -> float | None:
    """Annualised Sortino ratio of one series: mean excess over downside deviation.

    The downside deviation is ``sqrt(mean(min(excess, 0)**2))`` over all periods.

    Parameters
    ----------
    returns
        Per-period simple returns (fractions), shape ``(n,)``, ``n >= 2``.
    periods_per_year
        Periods per year.
    risk_free_rate
        Annual risk-free rate (fraction): the target return.

    Returns
    -------
    float or None
        The ratio; 0.0 if no period is below the target and the mean excess is 0; ``None``
        (undefined) if no period is below the target and the mean excess is positive.
    """
    array = _returns(returns)
    if array.ndim != 1:
        raise EvaluationError(f"sortino_ratio takes one series (shape (n,)), got {array.shape}")
    ppy = _positive_number(periods_per_year, "periods_per_year")
    excess = array - _per_period_rate(risk_free_rate, ppy)
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    mean = float(excess.mean())
    if downside == 0.0:
        return 0.0 if mean == 0.0 else None
    return float(_out(np.asarray(mean / downside * math.sqrt(ppy))))


def max_drawdown(*, returns: np.ndarray) -> np.ndarray | float:
    """Largest peak-to-trough fall of equity, as a positive fraction, vectorised.

    Equity starts at 1.0 before the first return, so a first-period loss is a drawdown.

    Parameters
    ----------
    returns
        Per-period simple returns (fractions), shape ``(..., n)``, ``n >= 2``.

    Returns
    -------
    float or numpy.ndarray
        ``max(1 - equity / running peak)`` in [0, 1] for equity that stays positive,
        shape ``(...)``.
    """
    array = _returns(returns)
    equity = np.concatenate([np.ones(array.shape[:-1] + (1,)), np.cumprod(1.0 + array, axis=-1)], axis=-1)
    peak = np.maximum.accumulate(equity, axis=-1)
    return _out(np.max(1.0 - equity / peak, axis=-1))


def calmar_ratio(*, returns: np.ndarray, periods_per_year: float) -> float | None:
    """CAGR over maximum drawdown of one series.

    Returns
    -------
    float or None
        The ratio; 0.0 when both are 0; ``None`` (undefined) for growth without a drawdown.
    """
    array = _returns(returns)
    if array.ndim != 1:
        raise EvaluationError(f"calmar_ratio takes one series (shape (n,)), got {array.shape}")
    growth = float(cagr(returns=array, periods_per_year=periods_per_year))
    drawdown = float(max_drawdown(returns=array))
    if drawdown == 0.0:
        return 0.0 if growth == 0.0 else None
    return growth / drawdown


def win_rate(*, trade_pnl: np.ndarray) -> float:
    """Share of trades with a strictly positive pnl; break-even counts as a loss.

    Parameters
    ----------
    trade_pnl
        Per-trade returns (fractions), shape ``(n_trades,)``.

    Returns
    -------
    float
        Fraction in [0, 1]; 0.0 when there are no trades (check the trade count).
    """
    pnl = np.asarray(trade_pnl, dtype=np.float64)
    if pnl.ndim != 1:
        raise EvaluationError(f"trade_pnl must have shape (n_trades,), got {pnl.shape}")
    if not np.isfinite(pnl).all():
        raise EvaluationError(f"trade pnl has a non-finite value at trade {int(np.flatnonzero(~np.isfinite(pnl))[0])}")
    return float(np.count_nonzero(pnl > 0.0) / pnl.size) if pnl.size else 0.0


def alpha_beta(
    *, returns: np.ndarray, benchmark_returns: np.ndarray, periods_per_year: float, risk_free_rate: float = 0.0
) -> tuple[float, float]:
    """Jensen's alpha and beta: OLS of excess returns on benchmark excess returns.

    Parameters
    ----------
    returns, benchmark_returns
        Per-period simple returns (fractions) of the strategy and the benchmark, aligned,
        shape ``(n,)``.
    periods_per_year
        Periods per year; alpha is annualised arithmetically (per-period alpha x periods).
    risk_free_rate
        Annual risk-free rate (fraction).

    Returns
    -------
    tuple of float
        ``(alpha per year (fraction), beta (dimensionless))``.

    Raises
    ------
    EvaluationError
        Misaligned series, or a benchmark with zero variance (beta undefined).
    """
    strategy = _returns(returns)
    benchmark = _returns(benchmark_returns, "benchmark returns")
    if strategy.ndim != 1 or strategy.shape != benchmark.shape:
        raise EvaluationError(
            f"returns {strategy.shape} and benchmark returns {benchmark.shape} must be aligned 1-D series"
        )
    ppy = _positive_number(periods_per_year, "periods_per_year")
    rate = _per_period_rate(risk_free_rate, ppy)
    excess, benchmark_excess = strategy - rate, benchmark - rate
    centred = benchmark_excess - benchmark_excess.mean()
    variance = float(np.dot(centred, centred))
    if variance <= (ZERO_STD_RELATIVE_TOLERANCE * abs(float(benchmark_excess.mean()))) ** 2 * benchmark.size:
        raise EvaluationError("beta undefined: the benchmark's returns have zero variance")
    beta = float(np.dot(centred, excess - excess.mean())) / variance
    alpha = (float(excess.mean()) - beta * float(benchmark_excess.mean())) * ppy
    return float(_out(np.asarray(alpha))), float(_out(np.asarray(beta)))


def return_moments(*, returns: np.ndarray) -> tuple[float, float]:
    """Sample skewness and raw (non-excess) kurtosis of one series, population moments.

    Returns
    -------
    tuple of float
        ``(skew, kurtosis)``; a normal sample gives about ``(0, 3)``. A zero-variance
        series gives exactly ``(0.0, 3.0)`` (see the module's edge cases).
    """
    array = _returns(returns)
    if array.ndim != 1:
        raise EvaluationError(f"return_moments takes one series (shape (n,)), got {array.shape}")
    centred = array - array.mean()
    m2 = float(np.mean(centred**2))
    if math.sqrt(m2) <= ZERO_STD_RELATIVE_TOLERANCE * abs(float(array.mean())):
        return 0.0, 3.0
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def _sharpe_denominator(sharpe: np.ndarray, skew: np.ndarray, kurtosis: np.ndarray) -> np.ndarray:
    """``sqrt(1 - skew SR + (kurtosis - 1) / 4 SR**2)``: the SR estimator's non-normal std factor."""
    inner = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not (np.asarray(inner) > 0).all():
        raise EvaluationError(
            "Sharpe ratio variance is not positive for these skew and kurtosis; kurtosis must be the "
            "raw (non-excess) kurtosis (3 for normal returns)"
        )
    return np.sqrt(inner)


def _moment_inputs(sharpe: float, skew: float, kurtosis: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    values = [np.asarray(v, dtype=np.float64) for v in (sharpe, skew, kurtosis)]
    for name, value in zip(("sharpe", "skew", "kurtosis"), values, strict=True):
        if not np.isfinite(value).all():
            raise EvaluationError(f"{name} must be finite, got {value!r}")
    if (values[2] < 1.0).any():
        raise EvaluationError(f"kurtosis must be the raw kurtosis (>= 1, 3 for normal returns), got {values[2]!r}")
    return values[0], values[1], values[2]


def _observations(n_observations: int) -> int:
    if isinstance(n_observations, bool) or not isinstance(n_observations, int | np.integer) or n_observations < 2:
        raise EvaluationError(f"n_observations must be an integer >= 2, got {n_observations!r}")
    return int(n_observations)


def probabilistic_sharpe_ratio(
    *, sharpe: float, n_observations: int, skew: float, kurtosis: float, benchmark_sharpe: float = 0.0
) -> np.ndarray | float:
    """Probability that the true Sharpe ratio exceeds ``benchmark_sharpe`` (Bailey & López de Prado 2012).

    ``PSR = Phi((SR - SR*) sqrt(n - 1) / sqrt(1 - skew SR + (kurtosis - 1) / 4 SR**2))``.
    Broadcasts over array inputs.

    Parameters
    ----------
    sharpe
        Observed Sharpe ratio per period (not annualised).
    n_observations
        Number of returns behind it (>= 2).
    skew, kurtosis
        Skewness and raw kurtosis (3 for normal) of those returns.
    benchmark_sharpe
        Threshold Sharpe ratio per period.

    Returns
    -------
    float or numpy.ndarray
        Probability in [0, 1].
    """
    sr, gamma3, gamma4 = _moment_inputs(sharpe, skew, kurtosis)
    threshold = np.asarray(benchmark_sharpe, dtype=np.float64)
    if not np.isfinite(threshold).all():
        raise EvaluationError(f"benchmark_sharpe must be finite, got {benchmark_sharpe!r}")
    n = _observations(n_observations)
    z = (sr - threshold) * math.sqrt(n - 1) / _sharpe_denominator(sr, gamma3, gamma4)
    return _out(ndtr(z))


def minimum_track_record_length(
    *,
    sharpe: float,
    skew: float,
    kurtosis: float,
    benchmark_sharpe: float = 0.0,
    confidence: float = DEFAULT_TRACK_RECORD_CONFIDENCE,
) -> float:
    """Observations needed for PSR to reach ``confidence`` (Bailey & López de Prado 2012).

    ``MinTRL = 1 + (1 - skew SR + (kurtosis - 1) / 4 SR**2) (Z_confidence / (SR - SR*))**2``.

    Parameters
    ----------
    sharpe
        Observed Sharpe ratio per period; must exceed ``benchmark_sharpe``.
    skew, kurtosis
        Skewness and raw kurtosis of the returns.
    benchmark_sharpe
        Threshold Sharpe ratio per period.
    confidence
        Target probability in (0, 1).

    Returns
    -------
    float
        Number of observations (periods).

    Raises
    ------
    EvaluationError
        If ``sharpe <= benchmark_sharpe`` (no track record is long enough).
    """
    sr, gamma3, gamma4 = _moment_inputs(sharpe, skew, kurtosis)
    if not (0.0 < confidence < 1.0):
        raise EvaluationError(f"confidence must be in (0, 1), got {confidence!r}")
    if not float(sr) > benchmark_sharpe:
        raise EvaluationError(
            f"minimum track record length is unbounded: Sharpe {float(sr):.4g} does not exceed {benchmark_sharpe:.4g}"
        )
    denominator = _sharpe_denominator(sr, gamma3, gamma4)
    return float(_out(1.0 + denominator**2 * (ndtri(confidence) / (sr - benchmark_sharpe)) ** 2))


def expected_max_sharpe(*, n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum Sharpe ratio of ``n_trials`` skill-less trials (Bailey & López de Prado 2014).

    ``E[max SR] ~ sqrt(V) ((1 - gamma) Z^-1(1 - 1/N) + gamma Z^-1(1 - 1/(N e)))`` with
    ``gamma`` the Euler-Mascheroni constant; the true Sharpe ratios are 0.

    Parameters
    ----------
    n_trials
        Number of independent trials N (>= 1).
    sharpe_variance
        Variance of the trials' Sharpe ratios, per-period units (annualised variance
        divided by periods per year).

    Returns
    -------
    float
        Expected maximum Sharpe ratio per period; 0.0 for a single trial (the expected
        value of one draw) or zero variance.
    """
    if isinstance(n_trials, bool) or not isinstance(n_trials, int | np.integer) or n_trials < 1:
        raise EvaluationError(f"n_trials must be an integer >= 1, got {n_trials!r}")
    if not (isinstance(sharpe_variance, int | float | np.number) and math.isfinite(sharpe_variance) and sharpe_variance >= 0):
        raise EvaluationError(f"sharpe_variance must be a finite number >= 0 (per period), got {sharpe_variance!r}")
    if n_trials == 1:
        return 0.0
    gamma = np.euler_gamma
    quantiles = (1.0 - gamma) * ndtri(1.0 - 1.0 / n_trials) + gamma * ndtri(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(sharpe_variance) * quantiles)


def deflated_sharpe_ratio(
    *, sharpe: float, n_observations: int, skew: float, kurtosis: float, n_trials: int, sharpe_variance: float
) -> float:
    """Deflated Sharpe ratio (Bailey & López de Prado 2014): PSR against the expected maximum of N trials.

    Parameters
    ----------
    sharpe
        Observed Sharpe ratio per period of the trial.
    n_observations
        Number of returns behind it.
    skew, kurtosis
        Skewness and raw kurtosis of those returns.
    n_trials
        Number of trials in the study (N >= 1).
    sharpe_variance
        Variance of the study's trials' Sharpe ratios, per-period units.

    Returns
    -------
    float
        Probability in [0, 1] that the true Sharpe ratio exceeds the expected maximum of
        ``n_trials`` skill-less trials.
    """
    threshold = expected_max_sharpe(n_trials=n_trials, sharpe_variance=sharpe_variance)
    return float(
        probabilistic_sharpe_ratio(
            sharpe=sharpe, n_observations=n_observations, skew=skew, kurtosis=kurtosis, benchmark_sharpe=threshold
        )
    )


class BacktestMetrics(BaseModel):
    """Metrics of one backtest run; frozen, every float finite.

    Returns are the run's bars 1..n-1 (bar 0 has no previous close), so
    ``n_observations = n_bars - 1``. Ratios are annualised with ``periods_per_year``
    unless named per period. ``sortino``, ``calmar`` and ``min_track_record_length`` are
    ``None`` when undefined (no downside, no drawdown, Sharpe <= 0).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    n_observations: int = Field(ge=2)
    periods_per_year: float = Field(gt=0)
    risk_free_rate: float
    total_return: float
    cagr: float
    annualised_volatility: float = Field(ge=0)
    sharpe: float
    sharpe_per_period: float
    sortino: float | None
    max_drawdown: float = Field(ge=0)
    calmar: float | None
    n_trades: int = Field(ge=0)
    win_rate: float = Field(ge=0, le=1)
    exposure: float = Field(ge=0, le=1)
    turnover: float = Field(ge=0)
    total_costs: float = Field(ge=0)
    alpha: float
    beta: float
    benchmark_total_return: float
    skew: float
    kurtosis: float = Field(ge=1)
    probabilistic_sharpe: float = Field(ge=0, le=1)
    min_track_record_length: float | None


def compute_metrics(
    *,
    result: BacktestResult,
    periods_per_year: float,
    benchmark_close: np.ndarray | None = None,
    benchmark_returns: np.ndarray | None = None,
    risk_free_rate: float = 0.0,
) -> BacktestMetrics:
    """All metrics of a single-run backtest.

    Parameters
    ----------
    result
        A backtest with arrays of shape ``(n_bars,)``, ``n_bars >= 3``.
    periods_per_year
        Bars per year (e.g. ``MarketWindow.periods_per_year``).
    benchmark_close
        Benchmark prices on the same bars, shape ``(n_bars,)``; alpha and beta are over
        buy-and-hold of it. Default: buy-and-hold of ``result.close``.
    benchmark_returns
        Alternatively the benchmark's returns for bars 1..n-1, shape ``(n_bars - 1,)``.
    risk_free_rate
        Annual risk-free rate (fraction).

    Returns
    -------
    BacktestMetrics
        Frozen model; see the module docstring for edge cases.

    Raises
    ------
    EvaluationError
        A batched result, too few bars, a misaligned or flat benchmark, an undefined
        Sharpe ratio, or any non-finite metric.
    """
    if result.net_returns.ndim != 1:
        raise EvaluationError(f"compute_metrics takes a single run; got shape {result.net_returns.shape}")
    if benchmark_close is not None and benchmark_returns is not None:
        raise EvaluationError("pass benchmark_close or benchmark_returns, not both")
    returns = _returns(result.net_returns[1:], "net returns (bars 1..n-1)")
    if benchmark_returns is None:
        prices = _returns(result.close if benchmark_close is None else benchmark_close, "benchmark close")
        if prices.shape != result.close.shape or not (prices > 0).all():
            raise EvaluationError(
                f"benchmark close must be positive prices on the backtest's {result.n_bars} bars, got shape {prices.shape}"
            )
        benchmark = prices[1:] / prices[:-1] - 1.0
    else:
        benchmark = _returns(benchmark_returns, "benchmark returns")
    ppy = _positive_number(periods_per_year, "periods_per_year")
    trade_frame = result.trades
    sharpe = float(sharpe_ratio(returns=returns, periods_per_year=ppy, risk_free_rate=risk_free_rate))
    sharpe_per_period = sharpe / math.sqrt(ppy)
    skew, kurtosis = return_moments(returns=returns)
    alpha, beta = alpha_beta(
        returns=returns, benchmark_returns=benchmark, periods_per_year=ppy, risk_free_rate=risk_free_rate
    )
    fields = {
        "n_observations": int(returns.size),
        "periods_per_year": ppy,
        "risk_free_rate": float(risk_free_rate),
        "total_return": float(total_return(returns=returns)),
        "cagr": float(cagr(returns=returns, periods_per_year=ppy)),
        "annualised_volatility": float(annualised_volatility(returns=returns, periods_per_year=ppy)),
        "sharpe": sharpe,
        "sharpe_per_period": sharpe_per_period,
        "sortino": sortino_ratio(returns=returns, periods_per_year=ppy, risk_free_rate=risk_free_rate),
        "max_drawdown": float(max_drawdown(returns=returns)),
        "calmar": calmar_ratio(returns=returns, periods_per_year=ppy),
        "n_trades": int(trade_frame.height),
        "win_rate": win_rate(trade_pnl=trade_frame.get_column("pnl").to_numpy()),
        "exposure": float(result.exposure),
        "turnover": float(result.turnover.sum()),
        "total_costs": float(result.total_costs),
        "alpha": alpha,
        "beta": beta,
        "benchmark_total_return": float(total_return(returns=benchmark)),
        "skew": skew,
        "kurtosis": kurtosis,
        "probabilistic_sharpe": float(
            probabilistic_sharpe_ratio(
                sharpe=sharpe_per_period, n_observations=returns.size, skew=skew, kurtosis=kurtosis
            )
        ),
        "min_track_record_length": (
            minimum_track_record_length(sharpe=sharpe_per_period, skew=skew, kurtosis=kurtosis)
            if sharpe_per_period > 0
            else None
        ),
    }
    try:
        return BacktestMetrics(**fields)
    except ValidationError as exc:
        raise EvaluationError(f"backtest metrics are invalid (NaN, infinite or out of range): {exc}") from exc
