"""Gate calibration: the gate chain's false-positive and false-negative rates where the truth is known.

Many simulated studies run end to end through the real gate code, each on its own market
with a known truth; this module holds the pure parts: the markets, the planted edge, the
binomial confidence intervals, the track-record bound, and the aggregation of per-trial
verdicts into error rates and a threshold sweep. The search itself is
:mod:`simulations.calibration_train`; the stage functions that judge each trial are the
pipeline's own (``pipeline_assets/calibration_assets.py`` runs them).

Markets
-------
A study's market has the synthetic market's texture
(:func:`simulations.market.synthetic_log_returns`: clustered volatility, Student-t noise,
jumps) for the study's market seed, hourly bars, and the production window lengths. The
train window is not shortened by default although the search would be a little faster:
the backtest gate's deflated Sharpe ratio deflates by the variance of the trials'
in-sample Sharpe ratios, which grows as the train window shrinks (about 4x at 90 days), so a
short train window would calibrate a stricter gate than production runs.

* **null** -- the texture's simple returns ``expm1(r_t)`` with independent random signs.
  The signs erase every predictable component (the texture's trending and mean-reverting
  spells) and keep each bar's magnitude, hence the volatility clustering, fat tails and
  jumps. Each bar's simple return has mean zero given the past, so any position decided
  on past prices earns nothing in expectation and pays its costs: no strategy has an edge
  and every promotion is a false positive. (Random signs on *log* returns would not do:
  ``E[exp(r)] - 1 = sigma**2 / 2`` per bar would hand a long position about 7 % a year.)
* **planted** -- the same null returns plus a drift of ``k`` bar volatilities per bar whose
  sign is set by the kind of edge (``CalibrationSettings.edge``):

  - ``trend``: constant over hidden trend spells (geometric lengths with mean
    ``SYNTHETIC_TREND_SPELL_BARS``, independent random signs),
    ``R_t = null_t + k * sigma_t * spell_t``; slow momentum earns from the spells;
  - ``autocorrelation``: the sign of the previous bar's null return,
    ``R_t = null_t + k * sigma_t * sign(null_{t-1})``: a short-horizon edge that a one-bar
    rule exploits and a slow one cannot see.

  ``k`` is solved with Brent's method (:func:`plant_edge`) so that the edge's planted
  momentum parameterisation (:data:`PLANTED_PARAMS`) has the stated annualised Sharpe ratio
  after default costs on a long sample of ``CALIBRATION_EDGE_SAMPLE_YEARS`` years with its
  own seed (common random numbers make the Sharpe ratio a deterministic function of ``k``);
  the batch-means standard error of that Sharpe ratio is reported with ``k``. The demo
  trainer's search space reaches both planted parameterisations.

Null study ``i`` and planted study ``i`` share their market and sampler seeds (common random
numbers): they differ only by the planted drift.

Error rates
-----------
Per study, the best ``candidates_per_study`` trials (by in-sample objective) of its first
``n`` trials go through every gate and the deployment decision. A null study is a false
positive when any of them passes (per stage: that gate alone, the whole chain, the
promotion); a planted study is a false negative when none does. The planted strategy
itself is also judged in every planted study (``candidates="planted_strategy"``), which
separates the gates' power from the search's. Rates carry Clopper-Pearson intervals.

Forward paper trading
---------------------
:func:`horizon_curve` measures the paper gate's sequential test alone on simulated forward
sessions: after how many market days a strategy of the planted Sharpe ratio is promoted, and
how often one at the test's floor is, per horizon.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import ndtri

from simulations.backtest import run_backtest
from simulations.constants import (
    CALIBRATION_BACKTEST_SHARPE_FLOORS,
    CALIBRATION_CANDIDATES_PER_STUDY,
    CALIBRATION_CONFIDENCE,
    CALIBRATION_EDGE_BLOCKS,
    CALIBRATION_EDGE_SAMPLE_YEARS,
    CALIBRATION_EDGE_SEED,
    CALIBRATION_MAX_FALSE_NEGATIVE_RATE,
    CALIBRATION_MAX_FALSE_POSITIVE_RATE,
    CALIBRATION_PAPER_DRAWDOWN_CAPS,
    CALIBRATION_PAPER_SHARPE_FLOORS,
    CALIBRATION_PAPER_WIN_RATE_FLOORS,
    CALIBRATION_PLANTED_LOOKBACK_BARS,
    CALIBRATION_PLANTED_SHARPES,
    CALIBRATION_PLANTED_TARGET_BAR_VOL,
    CALIBRATION_PLANTED_VOL_LOOKBACK_BARS,
    CALIBRATION_REQUIRED_GRADE_SETS,
    CALIBRATION_SEED,
    CALIBRATION_STUDIES,
    CALIBRATION_TRIALS_PER_STUDY,
    DEFAULT_BACKTEST_DAYS,
    DEFAULT_FEE_BPS,
    DEFAULT_FORWARD_DAYS,
    DEFAULT_SLIPPAGE_BPS,
    DEFAULT_TRACK_RECORD_CONFIDENCE,
    DEFAULT_TRAIN_DAYS,
    HORIZON_CONFIDENCE,
    HORIZON_DAYS,
    HORIZON_PLANTED_SHARPE,
    HORIZON_SESSIONS,
    SYNTHETIC_BAR_SECONDS,
    SYNTHETIC_BAR_VOL,
    SYNTHETIC_BARS_PER_DAY,
    SYNTHETIC_BASE_VOLUME,
    SYNTHETIC_NOISE_DOF,
    SYNTHETIC_PERIODS_PER_YEAR,
    SYNTHETIC_START_ISO,
    SYNTHETIC_START_PRICE,
    SYNTHETIC_TREND_SPELL_BARS,
)
from simulations.deployment import Candidate, DeploymentSettings, decide
from simulations.stage_names import GATE_ORDER
from simulations.errors import ConfigurationError
from simulations.gates import (
    GatePolicy,
    GateVerdict,
    SequentialTestPolicy,
    evaluate_backtest_gate,
    evaluate_cge_gate,
    evaluate_paper_gate,
)
from simulations.market import MarketWindows, split_windows, synthetic_log_returns
from simulations.metrics import (
    BacktestMetrics,
    minimum_track_record_length,
    probabilistic_sharpe_ratio,
    sharpe_ratio,
)
from simulations.sequential import sharpe_e_values
from simulations.strategies import BUILT_IN_STRATEGIES

MarketKind = Literal["null", "planted"]
EdgeKind = Literal["trend", "autocorrelation"]
CandidateKind = Literal["best", "planted_strategy"]
Stage = Literal["backtest_gate", "cge_gate", "paper_trading_gate", "chain", "promoted"]
ErrorKind = Literal["false_positive", "false_negative"]

#: Stages an error rate is reported for: each gate alone, all three gates, the deployment decision.
STAGES: tuple[Stage, ...] = ("backtest_gate", "cge_gate", "paper_trading_gate", "chain", "promoted")

#: The planted momentum parameterisation per kind of edge (a trial's params for strategy
#: ``momentum``): a slow trend rule, and a rule that follows the last bar.
PLANTED_STRATEGY = "momentum"
PLANTED_PARAMS: dict[EdgeKind, dict[str, int | float]] = {
    "trend": {
        "lookback": CALIBRATION_PLANTED_LOOKBACK_BARS,
        "vol_lookback": CALIBRATION_PLANTED_VOL_LOOKBACK_BARS,
        "target_bar_vol": CALIBRATION_PLANTED_TARGET_BAR_VOL,
    },
    "autocorrelation": {
        "lookback": 1,
        "vol_lookback": CALIBRATION_PLANTED_VOL_LOOKBACK_BARS,
        "target_bar_vol": CALIBRATION_PLANTED_TARGET_BAR_VOL,
    },
}

# Entropy word mixed into a market seed for the null signs and the planted spells, so these
# streams are independent of the texture's, whatever child streams market.py draws.
_SIGNS_AND_SPELLS = 0x5EED_CA1B

# Planted drifts (bar volatilities per bar) the solver starts its bracket at and gives up
# beyond: 0.06 gives the planted strategy a Sharpe ratio of 2, 1.0 one far above any target.
_FIRST_DRIFT_BRACKET = 0.025
_MAX_DRIFT_PER_VOL = 1.0
_DRIFT_TOLERANCE = 1e-6

# Entropy word mixed into the run seed for the horizon curve's sessions, so they are
# independent of the studies' markets drawn from the same seed.
_FORWARD_SESSIONS = 0x5E55_10F5

# Hourly innovations drawn at once (about 16 MB): the draws go market day by market day, so
# how many days one draw holds changes nothing but the memory it takes.
_VALUES_PER_DRAW = 1 << 21

#: Most sessions times market days per arm of the horizon curve: at this limit the test's
#: arrays over them (8 bytes a value) peak at about 600 MB (2,000 sessions of 2,500 days).
MAX_HORIZON_SESSION_DAYS = 5_000_000

_START = dt.datetime.fromisoformat(SYNTHETIC_START_ISO)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# --------------------------------------------------------------------------- settings and seeds


class CalibrationSettings(_Frozen):
    """What a calibration run simulates.

    Attributes
    ----------
    n_studies
        Simulated studies per market: the null market and each planted Sharpe ratio (>= 2:
        even-numbered studies select the recommended thresholds, odd-numbered ones test them).
    trials_per_study
        Optuna trial counts to report, ascending; one search of the largest count per study
        (its first ``n`` trials are an ``n``-trial study).
    planted_sharpes
        Planted annualised Sharpe ratios after costs; the first is the target's. Empty:
        null markets only (no false-negative rates, no recommendation).
    candidates_per_study
        Best trials per study (by in-sample objective) that go through the gates.
    seed
        Seed of the run; every study's seeds derive from it (:func:`study_seeds`).
    train_days
        Calendar days of a study's train window (default: production's; see the module docstring).
    edge
        The kind of edge planted markets carry (module docstring, "Markets").
    """

    n_studies: int = Field(default=CALIBRATION_STUDIES, ge=2)
    trials_per_study: tuple[int, ...] = Field(default=CALIBRATION_TRIALS_PER_STUDY, min_length=1)
    planted_sharpes: tuple[float, ...] = CALIBRATION_PLANTED_SHARPES
    candidates_per_study: int = Field(default=CALIBRATION_CANDIDATES_PER_STUDY, ge=1)
    seed: int = Field(default=CALIBRATION_SEED, ge=0)
    train_days: int = Field(default=DEFAULT_TRAIN_DAYS, ge=30)
    edge: EdgeKind = "trend"

    @model_validator(mode="after")
    def _consistent(self) -> CalibrationSettings:
        counts = list(self.trials_per_study)
        if counts != sorted(set(counts)) or counts[0] < 2:
            raise ValueError(f"trials_per_study must be ascending, distinct and >= 2, got {counts}")
        sharpes = list(self.planted_sharpes)
        if len(set(sharpes)) != len(sharpes) or any(s <= 0 for s in sharpes):
            raise ValueError(f"planted_sharpes must be distinct and > 0 (annualised), got {sharpes}")
        return self

    @property
    def target_trials(self) -> int:
        """The study size the error-rate target refers to (the largest trial count)."""
        return self.trials_per_study[-1]

    @property
    def target_sharpe(self) -> float | None:
        """The planted Sharpe ratio the error-rate target refers to (the first), if any."""
        return self.planted_sharpes[0] if self.planted_sharpes else None

    @property
    def n_simulated_studies(self) -> int:
        """Studies the run simulates: ``n_studies`` per market."""
        return self.n_studies * (1 + len(self.planted_sharpes))


@dataclass(frozen=True)
class StudySeeds:
    """Seeds of one simulated study (shared by its null and planted markets).

    Attributes
    ----------
    market
        Seed of the study's market texture, signs and spells.
    sampler
        Seed of the study's Optuna sampler.
    """

    market: int
    sampler: int


def study_seeds(*, seed: int, study: int) -> StudySeeds:
    """Seeds of study ``study`` of a run seeded ``seed``: ``SeedSequence(seed, spawn_key=(study,))``.

    Each study's seeds depend only on the run seed and the study's index, so a run with
    more studies repeats the smaller run's studies exactly.
    """
    market, sampler = np.random.SeedSequence(seed, spawn_key=(study,)).generate_state(2)
    return StudySeeds(market=int(market), sampler=int(sampler))


# --------------------------------------------------------------------------- markets


def _spell_signs(rng: np.random.Generator, n_bars: int) -> np.ndarray:
    """Sign (+1/-1) of the hidden trend spell of each bar; spells are geometric, signs independent."""
    lengths = rng.geometric(1.0 / SYNTHETIC_TREND_SPELL_BARS, size=n_bars)
    signs = rng.choice(np.array([-1.0, 1.0]), size=n_bars)
    # n spells of >= 1 bar always cover n bars; only those reaching bar n are expanded.
    used = int(np.searchsorted(np.cumsum(lengths), n_bars)) + 1
    return np.repeat(signs[:used], lengths[:used])[:n_bars]


def market_components(*, seed: int, n_bars: int, edge: EdgeKind = "trend") -> tuple[np.ndarray, np.ndarray]:
    """The null simple returns of a calibration market and its unit planted drift.

    Parameters
    ----------
    seed
        Market seed (non-negative integer).
    n_bars
        Number of bars (>= 1).
    edge
        The kind of edge: ``trend`` or ``autocorrelation`` (module docstring, "Markets").

    Returns
    -------
    tuple[numpy.ndarray, numpy.ndarray]
        ``(null, unit)``, both of shape ``(n_bars,)``: the null market's simple returns
        (fractions per bar) and the texture's bar volatility times the drift's sign (the
        hidden spell's, or the previous null return's; 0 on the first bar), so that a
        market with drift ``k`` bar volatilities per bar has simple returns ``null + k * unit``.
    """
    log_returns, sigma = synthetic_log_returns(seed=seed, n_bars=n_bars)
    sign_rng, spell_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence([seed, _SIGNS_AND_SPELLS]).spawn(2)
    )
    null = np.expm1(log_returns) * sign_rng.choice(np.array([-1.0, 1.0]), size=n_bars)
    if edge == "autocorrelation":
        return null, sigma * np.concatenate(([0.0], np.sign(null[:-1])))
    return null, sigma * _spell_signs(spell_rng, n_bars)


def _close(simple_returns: np.ndarray) -> np.ndarray:
    growth = 1.0 + simple_returns
    if not (growth > 0).all():
        raise ConfigurationError("a calibration market's bar lost 100 % or more: the planted drift is too large")
    return SYNTHETIC_START_PRICE * np.cumprod(growth)


def calibration_windows(
    *, seed: int, drift_per_vol: float, train_days: int, edge: EdgeKind = "trend"
) -> MarketWindows:
    """Train, backtest and forward windows of one calibration market.

    Parameters
    ----------
    seed
        Market seed.
    drift_per_vol
        Planted drift in bar volatilities per bar (0.0: the null market).
    edge
        The kind of edge the drift follows (:func:`market_components`).
    train_days
        Calendar days of the train window; backtest and forward windows have the production
        lengths (``DEFAULT_BACKTEST_DAYS``, ``DEFAULT_FORWARD_DAYS``).

    Returns
    -------
    MarketWindows
        Hourly bars (open = previous close, high/low = max/min of open and close, constant
        volume), split by :func:`simulations.market.split_windows`.
    """
    n_days = train_days + DEFAULT_BACKTEST_DAYS + DEFAULT_FORWARD_DAYS
    null, unit = market_components(seed=seed, n_bars=n_days * SYNTHETIC_BARS_PER_DAY, edge=edge)
    return market_from_returns(simple_returns=null + drift_per_vol * unit, train_days=train_days)


def market_from_returns(*, simple_returns: np.ndarray, train_days: int = DEFAULT_TRAIN_DAYS) -> MarketWindows:
    """A market given by its per-bar simple returns, as hourly bars cut into the production windows.

    The public way into the calibration for a market of one's own (see
    ``pipeline_assets.calibration_assets.judge_market``); a price frame goes through
    :func:`simulations.market.split_windows` instead.

    Parameters
    ----------
    simple_returns
        Simple returns per hourly bar (fractions, each > -1), oldest first; at least
        ``train_days`` plus the production backtest and forward days of bars.
    train_days
        Calendar days of the train window; the backtest and forward windows have the
        production lengths (``DEFAULT_BACKTEST_DAYS``, ``DEFAULT_FORWARD_DAYS``).

    Returns
    -------
    MarketWindows
        Closes compounded from ``SYNTHETIC_START_PRICE`` (open = previous close, high/low =
        max/min of open and close, constant volume) from ``SYNTHETIC_START_ISO`` on.

    Raises
    ------
    ConfigurationError
        If a return is not finite or loses 100 % or more, or there are too few bars.
    """
    returns = np.asarray(simple_returns, dtype=np.float64)
    needed = (train_days + DEFAULT_BACKTEST_DAYS + DEFAULT_FORWARD_DAYS) * SYNTHETIC_BARS_PER_DAY
    if returns.ndim != 1 or returns.size < needed:
        raise ConfigurationError(
            f"a calibration market needs at least {needed} hourly returns ({train_days} train days plus the "
            f"backtest and forward windows), got shape {returns.shape}"
        )
    if not np.all(np.isfinite(returns)):
        raise ConfigurationError("a calibration market's returns must be finite")
    n = returns.size
    close = _close(returns)
    open_ = np.concatenate(([SYNTHETIC_START_PRICE], close[:-1]))
    start_us = (_START - _EPOCH) // dt.timedelta(microseconds=1)
    timestamps = start_us + np.arange(n, dtype=np.int64) * (SYNTHETIC_BAR_SECONDS * 1_000_000)
    frame = pl.DataFrame(
        {
            "timestamp": pl.Series(timestamps, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "symbol": pl.Series(["CAL"] * n, dtype=pl.String),
            "open": open_,
            "high": np.maximum(open_, close),
            "low": np.minimum(open_, close),
            "close": close,
            "volume": np.full(n, SYNTHETIC_BASE_VOLUME),
        }
    )
    return split_windows(frame=frame, train_days=train_days)


class PlantedEdge(_Frozen):
    """How a planted-edge market is built for a stated Sharpe ratio.

    Attributes
    ----------
    sharpe
        The stated annualised Sharpe ratio of the planted strategy after default costs.
    edge
        The kind of edge.
    drift_per_vol
        The planted drift ``k`` (bar volatilities per bar) that gives it.
    standard_error
        Batch-means standard error of the planted strategy's Sharpe ratio on the long
        sample (annualised): the uncertainty of the stated Sharpe ratio.
    sample_years, sample_seed
        Length (years of hourly bars) and seed of the long sample.
    strategy, params
        The planted strategy.
    """

    sharpe: float
    edge: EdgeKind = "trend"
    drift_per_vol: float
    standard_error: float
    sample_years: float
    sample_seed: int
    strategy: str
    params: dict[str, int | float]


def _planted_net_returns(null: np.ndarray, unit: np.ndarray, drift_per_vol: float, edge: EdgeKind) -> np.ndarray:
    strategy, params = BUILT_IN_STRATEGIES.build(name=PLANTED_STRATEGY, params=PLANTED_PARAMS[edge])
    close = _close(null + drift_per_vol * unit)
    result = run_backtest(
        close=close,
        positions=strategy.positions(close=close, params=params),
        fee_bps=DEFAULT_FEE_BPS,
        slippage_bps=DEFAULT_SLIPPAGE_BPS,
    )
    return result.net_returns[1:]


@functools.lru_cache(maxsize=16)
def plant_edge(
    *,
    sharpe: float,
    edge: EdgeKind = "trend",
    sample_years: float = CALIBRATION_EDGE_SAMPLE_YEARS,
    seed: int = CALIBRATION_EDGE_SEED,
) -> PlantedEdge:
    """Solve the planted drift for which the planted strategy has annualised Sharpe ``sharpe``.

    The long sample's texture is drawn once; its Sharpe ratio as a function of the drift is
    then deterministic and increasing, and Brent's method finds the drift to
    ``1e-6`` bar volatilities.

    Parameters
    ----------
    sharpe
        Target annualised Sharpe ratio after default costs (> 0).
    edge
        The kind of edge (its planted strategy is ``PLANTED_PARAMS[edge]``).
    sample_years
        Years of hourly bars in the long sample.
    seed
        Seed of the long sample's market.

    Returns
    -------
    PlantedEdge
        The drift and the standard error of the stated Sharpe ratio. Cached per arguments.

    Raises
    ------
    ConfigurationError
        If the target is not positive or not reachable below a drift of one bar volatility.
    """
    if not (math.isfinite(sharpe) and sharpe > 0):
        raise ConfigurationError(f"a planted Sharpe ratio must be > 0 (annualised), got {sharpe!r}")
    n_bars = round(sample_years * SYNTHETIC_PERIODS_PER_YEAR)
    null, unit = market_components(seed=seed, n_bars=n_bars, edge=edge)

    def excess(drift: float) -> float:
        returns = _planted_net_returns(null, unit, drift, edge)
        return float(sharpe_ratio(returns=returns, periods_per_year=SYNTHETIC_PERIODS_PER_YEAR)) - sharpe

    # The bracket grows from a small drift: a drift far above the target would compound a
    # century of bars past the float range.
    high = _FIRST_DRIFT_BRACKET
    while excess(high) < 0:
        high *= 2.0
        if high > _MAX_DRIFT_PER_VOL:
            raise ConfigurationError(
                f"planted Sharpe {sharpe} is not reachable with a drift below {_MAX_DRIFT_PER_VOL}"
            )
    drift = _root(excess, 0.0, high, xtol=_DRIFT_TOLERANCE)
    blocks = np.array_split(_planted_net_returns(null, unit, drift, edge), CALIBRATION_EDGE_BLOCKS)
    block_sharpes = [float(sharpe_ratio(returns=b, periods_per_year=SYNTHETIC_PERIODS_PER_YEAR)) for b in blocks]
    return PlantedEdge(
        sharpe=sharpe,
        edge=edge,
        drift_per_vol=drift,
        standard_error=float(np.std(block_sharpes, ddof=1) / math.sqrt(len(block_sharpes))),
        sample_years=sample_years,
        sample_seed=seed,
        strategy=PLANTED_STRATEGY,
        params=dict(PLANTED_PARAMS[edge]),
    )


# --------------------------------------------------------------------------- statistics


def _root(f: Callable[[float], float], low: float, high: float, **options: float) -> float:
    """A root of ``f`` bracketed by ``[low, high]`` (``scipy.optimize.brentq``).

    scipy.optimize and scipy.stats are imported when a calibration needs them: every process
    that loads the definitions (each run worker among them) would otherwise pay for them.
    """
    from scipy import optimize

    return float(optimize.brentq(f, low, high, **options))


def binomial_interval(
    *,
    successes: int,
    trials: int,
    confidence: float = CALIBRATION_CONFIDENCE,
    method: Literal["clopper-pearson", "wilson"] = "clopper-pearson",
) -> tuple[float, float]:
    """Two-sided confidence interval of a binomial proportion (``scipy.stats.binomtest``).

    Parameters
    ----------
    successes, trials
        Counts, ``0 <= successes <= trials``, ``trials >= 1``.
    confidence
        Confidence level in (0, 1).
    method
        ``"clopper-pearson"`` (exact; never undercovers, the choice for claims such as
        "at most 1 %") or ``"wilson"`` (score interval).

    Returns
    -------
    tuple of float
        ``(low, high)``, fractions in [0, 1].
    """
    if not (0 <= successes <= trials and trials >= 1):
        raise ConfigurationError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    # Imported here, as in _root: scipy.stats costs about 0.5 s to import.
    from scipy import stats

    interval = stats.binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="exact" if method == "clopper-pearson" else "wilson"
    )
    return float(interval.low), float(interval.high)


class TrackRecordStatement(_Frozen):
    """What a window of a given length can tell about a strategy of a given Sharpe ratio.

    Normal returns (skew 0, kurtosis 3) and one Sharpe-ratio test per window; selection
    among several trials only raises the false-positive rate, so the bounds are optimistic.

    Attributes
    ----------
    sharpe
        Annualised Sharpe ratio of the strategy.
    periods_per_year
        Bars per year.
    window_bars, window_days
        The paper (forward) window.
    out_of_sample_bars, out_of_sample_days
        Backtest plus forward windows: every bar the gates see out of sample.
    min_track_record_bars, min_track_record_days
        Minimum track record length (Bailey & Lopez de Prado 2012) for 95 % confidence that
        the true Sharpe ratio exceeds 0 when the observed one is ``sharpe``.
    psr_over_window
        Confidence that the true Sharpe ratio exceeds 0 after observing ``sharpe`` over the
        window (the probabilistic Sharpe ratio).
    fn_over_window, fn_over_out_of_sample
        False-negative rate of the most powerful Sharpe-ratio test whose false-positive
        rate is ``max_false_positive_rate``, over the window and over all out-of-sample bars.
    separating_bars, separating_days
        Track record at which that test also meets ``max_false_negative_rate``.
    separating_sharpe_over_window
        Annualised Sharpe ratio that the window alone separates at both rates.
    max_false_positive_rate, max_false_negative_rate
        The target.
    achievable
        Whether the target is reachable with the out-of-sample bars at all.
    statement
        The above in one paragraph.
    """

    sharpe: float
    periods_per_year: float
    window_bars: int
    window_days: float
    out_of_sample_bars: int
    out_of_sample_days: float
    min_track_record_bars: float
    min_track_record_days: float
    psr_over_window: float
    fn_over_window: float
    fn_over_out_of_sample: float
    separating_bars: float
    separating_days: float
    separating_sharpe_over_window: float
    max_false_positive_rate: float
    max_false_negative_rate: float
    achievable: bool
    statement: str


def _best_test_fn(per_period_sharpe: float, n_bars: int, max_fp: float) -> float:
    """FN of the one-sided Sharpe test with false-positive rate ``max_fp`` over ``n_bars`` normal returns.

    Under the null the observed per-period Sharpe ratio is about N(0, 1/(n - 1)), so the
    test's threshold is ``z_(1 - max_fp) / sqrt(n - 1)``; the probabilistic Sharpe ratio
    against that threshold is the test's power.
    """
    threshold = float(ndtri(1.0 - max_fp)) / math.sqrt(n_bars - 1)
    power = probabilistic_sharpe_ratio(
        sharpe=per_period_sharpe, n_observations=n_bars, skew=0.0, kurtosis=3.0, benchmark_sharpe=threshold
    )
    return 1.0 - float(power)


def track_record_statement(
    *,
    sharpe: float,
    window_bars: int,
    out_of_sample_bars: int,
    periods_per_year: float = SYNTHETIC_PERIODS_PER_YEAR,
    max_false_positive_rate: float = CALIBRATION_MAX_FALSE_POSITIVE_RATE,
    max_false_negative_rate: float = CALIBRATION_MAX_FALSE_NEGATIVE_RATE,
) -> TrackRecordStatement:
    """Whether ``window_bars`` of paper trading can separate Sharpe ``sharpe`` from no edge.

    Parameters
    ----------
    sharpe
        Annualised Sharpe ratio (> 0).
    window_bars
        Bars of the paper (forward) window.
    out_of_sample_bars
        Bars the gates see out of sample (backtest plus forward windows).
    periods_per_year
        Bars per year.
    max_false_positive_rate, max_false_negative_rate
        The error-rate target (fractions).

    Returns
    -------
    TrackRecordStatement
        Minimum track record length (:func:`simulations.metrics.minimum_track_record_length`),
        the best achievable error rates and the statement.
    """
    per_period = sharpe / math.sqrt(periods_per_year)
    bars_per_day = periods_per_year / 365.25
    min_trl = minimum_track_record_length(
        sharpe=per_period, skew=0.0, kurtosis=3.0, confidence=DEFAULT_TRACK_RECORD_CONFIDENCE
    )
    psr = float(probabilistic_sharpe_ratio(sharpe=per_period, n_observations=window_bars, skew=0.0, kurtosis=3.0))
    fn_window = _best_test_fn(per_period, window_bars, max_false_positive_rate)
    fn_oos = _best_test_fn(per_period, out_of_sample_bars, max_false_positive_rate)
    # The test separates at both rates once the per-period Sharpe ratio covers both normal
    # quantiles: s sqrt(n - 1) = z_fp + sigma(s) z_fn with sigma(s) = sqrt(1 + s**2 / 2).
    z_fp = float(ndtri(1.0 - max_false_positive_rate))
    z_fn = float(ndtri(1.0 - max_false_negative_rate))
    separating = 1.0 + ((z_fp + math.sqrt(1.0 + per_period**2 / 2.0) * z_fn) / per_period) ** 2
    separating_sharpe = _root(
        lambda s: _best_test_fn(s, window_bars, max_false_positive_rate) - max_false_negative_rate, 1e-9, 1.0
    ) * math.sqrt(periods_per_year)
    achievable = fn_oos <= max_false_negative_rate
    window_days, oos_days = window_bars / bars_per_day, out_of_sample_bars / bars_per_day
    statement = (
        f"A strategy with a true annualised Sharpe ratio of {sharpe:g} needs {min_trl:,.0f} bars "
        f"({min_trl / bars_per_day:,.0f} days) of hourly returns before its track record shows a positive "
        f"Sharpe ratio with 95 % confidence; the paper window has {window_bars:,} bars ({window_days:g} days), "
        f"after which that confidence is only {psr:.0%}. No threshold separates it from a null strategy at "
        f"FP <= {max_false_positive_rate:.0%} and FN <= {max_false_negative_rate:.0%}: at "
        f"FP {max_false_positive_rate:.0%}, the most powerful Sharpe test misses it {fn_window:.0%} of the time "
        f"over the paper window and {fn_oos:.0%} over all {oos_days:g} out-of-sample days (backtest + forward). "
        f"Both rates need {separating:,.0f} bars ({separating / bars_per_day:,.0f} days) at Sharpe {sharpe:g}, "
        f"or a Sharpe ratio of {separating_sharpe:.1f} over the paper window. "
        + (
            "The target is reachable with the out-of-sample bars."
            if achievable
            else "The target is not reachable with these windows; the calibration reports the thresholds that "
            f"minimise the false-negative rate at FP <= {max_false_positive_rate:.0%}."
        )
    )
    return TrackRecordStatement(
        sharpe=sharpe,
        periods_per_year=periods_per_year,
        window_bars=window_bars,
        window_days=window_days,
        out_of_sample_bars=out_of_sample_bars,
        out_of_sample_days=oos_days,
        min_track_record_bars=min_trl,
        min_track_record_days=min_trl / bars_per_day,
        psr_over_window=psr,
        fn_over_window=fn_window,
        fn_over_out_of_sample=fn_oos,
        separating_bars=separating,
        separating_days=separating / bars_per_day,
        separating_sharpe_over_window=float(separating_sharpe),
        max_false_positive_rate=max_false_positive_rate,
        max_false_negative_rate=max_false_negative_rate,
        achievable=achievable,
        statement=statement,
    )


# --------------------------------------------------------------------------- forward paper sessions

HORIZON_SEED_RULE = (
    f"innovations: numpy default_rng(SeedSequence([seed, {_FORWARD_SESSIONS:#x}])).standard_t(dof), drawn market "
    "day after market day in the shape (day, session, bar) and times sqrt((dof - 2) / dof); the planted and null "
    "arms share them"
)


class SessionRate(_Frozen):
    """A share of simulated paper sessions, with its Clopper-Pearson interval.

    Attributes
    ----------
    errors, sessions
        Sessions in error and sessions of the arm (counts).
    rate, ci_low, ci_high
        ``errors / sessions`` and its interval (fractions).
    """

    errors: int = Field(ge=0)
    sessions: int = Field(ge=1)
    rate: float = Field(ge=0.0, le=1.0)
    ci_low: float = Field(ge=0.0, le=1.0)
    ci_high: float = Field(ge=0.0, le=1.0)


class HorizonRow(_Frozen):
    """The sequential test's error rates once the sessions have traded ``days`` market days.

    Attributes
    ----------
    days
        Market days of forward paper trading (each day's close is one look of the test).
    false_negative
        Sessions of the planted arm not promoted by then.
    false_positive
        Sessions of the null arm (Sharpe ratio at the floor) promoted by then.
    """

    days: int = Field(ge=1)
    false_negative: SessionRate
    false_positive: SessionRate


class HorizonCurve(_Frozen):
    """How long forward paper trading takes to promote a strategy of the planted Sharpe ratio.

    Attributes
    ----------
    rows
        One per horizon, ascending in days.
    planted_sharpe
        Annualised Sharpe ratio of the planted arm's sessions (per year).
    sequential
        The test as run: the given floor, futility bound and ``max_days``, at the curve's
        ``confidence``.
    threshold
        The e-value that promotes, ``1 / (1 - confidence)``.
    alpha
        ``1 - confidence``: the bound on the false-positive rate, at every horizon at once.
    n_sessions
        Simulated sessions per arm.
    bars_per_day, looks_per_year
        Hourly bars per market day and market days (looks) per year: the market trades
        around the clock.
    bar_vol
        Per-bar standard deviation of the sessions' net returns (fraction; the test is scale-free).
    tail_dof
        Degrees of freedom of the Student-t innovations.
    seed, seed_rule
        The seed, and how the sessions derive from it.
    interval_confidence
        Confidence of the Clopper-Pearson intervals.
    statement
        The curve in two sentences.
    """

    rows: tuple[HorizonRow, ...]
    planted_sharpe: float
    sequential: SequentialTestPolicy
    threshold: float
    alpha: float
    n_sessions: int
    bars_per_day: int
    looks_per_year: float
    bar_vol: float
    tail_dof: float
    seed: int
    seed_rule: str
    interval_confidence: float
    statement: str


def _is_real(value: object) -> bool:
    numeric = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return numeric and math.isfinite(value)


def _is_count(value: object, low: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer) and value >= low


def _validated_horizons(horizons: object) -> tuple[int, ...]:
    if isinstance(horizons, str | bytes) or not isinstance(horizons, Sequence) or not horizons:
        raise ConfigurationError(
            f"horizons must be a non-empty sequence of market days, e.g. {HORIZON_DAYS}; got {horizons!r}"
        )
    bad = [h for h in horizons if not _is_count(h, 1)]
    if bad:
        raise ConfigurationError(f"horizons must be whole market days >= 1, got {bad[0]!r} in {list(horizons)}")
    days = tuple(int(h) for h in horizons)
    if any(later <= earlier for earlier, later in zip(days, days[1:])):
        raise ConfigurationError(
            f"horizons must be strictly ascending market days, got {list(days)}; did you mean {sorted(set(days))}?"
        )
    return days


def _promotion_days(daily: np.ndarray, test: SequentialTestPolicy, looks_per_year: float) -> np.ndarray:
    """The market day (1-based) each session's test promotes it, as the paper gate decides
    (:func:`simulations.paper.paper_metrics`); ``n_days + 1`` for a session never promoted."""
    never = daily.shape[-1] + 1

    def first_day(alternative: Literal["greater", "less"]) -> np.ndarray:
        e = sharpe_e_values(
            returns=daily, sharpe_floor=test.sharpe_floor, periods_per_year=looks_per_year, alternative=alternative
        )
        reached = e >= test.threshold
        return np.where(reached.any(axis=-1), reached.argmax(axis=-1) + 1, never)

    decided = first_day("greater")
    if test.futility:
        # A futility bound reached on an earlier day ends the session unpromoted; on the same
        # day the promotion stands.
        decided = np.where(first_day("less") < decided, never, decided)
    if test.max_days is not None:
        decided = np.where(decided > test.max_days, never, decided)
    return decided


def _session_rate(errors: int, sessions: int) -> SessionRate:
    low, high = binomial_interval(successes=errors, trials=sessions)
    return SessionRate(errors=errors, sessions=sessions, rate=errors / sessions, ci_low=low, ci_high=high)


def horizon_curve(
    *,
    horizons: Sequence[int] = HORIZON_DAYS,
    n_sessions: int = HORIZON_SESSIONS,
    planted_sharpe: float = HORIZON_PLANTED_SHARPE,
    confidence: float = HORIZON_CONFIDENCE,
    sequential: SequentialTestPolicy = SequentialTestPolicy(),
    seed: int = CALIBRATION_SEED,
) -> HorizonCurve:
    """False negatives at the planted Sharpe ratio and false positives at the floor of the paper
    gate's sequential test, after each horizon of forward paper trading.

    Simulates ``n_sessions`` forward paper sessions per arm on a market open around the
    clock, as hourly per-bar net returns ``SYNTHETIC_BAR_VOL * (sharpe / sqrt(bars per year) +
    e_t)``, with ``e_t`` Student-t with ``SYNTHETIC_NOISE_DOF`` degrees of freedom scaled to
    unit variance: fat tails, and an annualised Sharpe ratio of exactly ``sharpe``. The
    planted arm has ``planted_sharpe``; the null arm the test's floor, the boundary of the
    null hypothesis where false positives are likeliest. Both arms use the same innovations
    (common random numbers, as the studies' null and planted markets do). Each session's bars
    compound into market-day returns (as :func:`simulations.paper.daily_returns` does), and
    the test runs as the paper gate runs it: :func:`simulations.sequential.sharpe_e_values` at
    every market day's close, promoted on the first day the e-value reaches the threshold
    unless the futility bound (when on) reached it on an earlier day, and never after
    ``max_days``.

    Only the sequential test is simulated: the gate also needs ``paper.min_days`` of trading
    and a passing grade, so its false negatives are at least these.

    Parameters
    ----------
    horizons
        Market days of forward trading after which the rates are read (whole days >= 1,
        strictly ascending); the sessions trade the last one.
    n_sessions
        Simulated sessions per arm (>= 1).
    planted_sharpe
        Annualised Sharpe ratio of the planted arm (per year, finite, above the floor).
    confidence
        Confidence of the test, in (0, 1); it replaces ``sequential.confidence``. The default,
        0.99, bounds the false-positive rate by 1 % at every horizon.
    sequential
        The paper gate's test (``gates.paper.sequential``): its ``sharpe_floor`` (annualised),
        ``futility`` and ``max_days`` (market days) are run; ``enabled`` is not read.
    seed
        Seed of the sessions (non-negative integer; :data:`HORIZON_SEED_RULE`).

    Returns
    -------
    HorizonCurve
        One row per horizon with both rates and their 95 % Clopper-Pearson intervals; false
        negatives never rise and false positives never fall with the horizon. The same
        arguments give the same curve, and a curve over fewer horizons repeats the first rows
        of a longer one.

    Raises
    ------
    ConfigurationError
        If an argument is out of range, or the sessions times the last horizon exceed
        :data:`MAX_HORIZON_SESSION_DAYS`; the message says what to pass instead.
    """
    days = _validated_horizons(horizons)
    if not _is_count(n_sessions, 1):
        raise ConfigurationError(
            f"n_sessions must be a whole number >= 1 (simulated sessions per arm), got {n_sessions!r}"
        )
    if not (_is_real(confidence) and 0.0 < confidence < 1.0):
        raise ConfigurationError(
            "confidence must be a number strictly between 0 and 1 (0.99: at most 1 % false positives), "
            f"got {confidence!r}"
        )
    if not isinstance(sequential, SequentialTestPolicy):
        raise ConfigurationError(
            f"sequential must be a SequentialTestPolicy (gates.paper.sequential), got {type(sequential).__name__}"
        )
    floor = sequential.sharpe_floor
    if not (_is_real(planted_sharpe) and planted_sharpe > floor):
        raise ConfigurationError(
            f"planted_sharpe must be a finite annualised Sharpe ratio above the test's floor {floor:g} "
            f"(a missed edge above the floor is a false negative), got {planted_sharpe!r}"
        )
    if not _is_count(seed, 0):
        raise ConfigurationError(f"seed must be a non-negative integer, got {seed!r}")
    n_days = days[-1]
    if n_sessions * n_days > MAX_HORIZON_SESSION_DAYS:
        raise ConfigurationError(
            f"{n_sessions:,} sessions of {n_days:,} market days are more than {MAX_HORIZON_SESSION_DAYS:,} session "
            f"days: use at most {MAX_HORIZON_SESSION_DAYS // n_days:,} sessions, or a shorter last horizon"
        )
    n_sessions = int(n_sessions)
    test = SequentialTestPolicy.model_validate({**sequential.model_dump(), "enabled": True, "confidence": confidence})
    bars = SYNTHETIC_BARS_PER_DAY
    looks_per_year = SYNTHETIC_PERIODS_PER_YEAR / bars
    dof = SYNTHETIC_NOISE_DOF
    drifts = np.array([planted_sharpe, floor]) / math.sqrt(SYNTHETIC_PERIODS_PER_YEAR)

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _FORWARD_SESSIONS]))
    daily = np.empty((2, n_sessions, n_days))
    step = max(1, _VALUES_PER_DRAW // (n_sessions * bars))
    for start in range(0, n_days, step):
        stop = min(n_days, start + step)
        noise = rng.standard_t(dof, size=(stop - start, n_sessions, bars)) * math.sqrt((dof - 2.0) / dof)
        for arm, drift in enumerate(drifts):
            growth = np.log1p(SYNTHETIC_BAR_VOL * (drift + noise)).sum(axis=-1)
            daily[arm, :, start:stop] = np.expm1(growth).T
    planted, null = (_promotion_days(arm, test, looks_per_year) for arm in daily)

    rows = tuple(
        HorizonRow(
            days=h,
            false_negative=_session_rate(int(np.count_nonzero(planted > h)), n_sessions),
            false_positive=_session_rate(int(np.count_nonzero(null <= h)), n_sessions),
        )
        for h in days
    )
    alpha = float(f"{1.0 - confidence:.12g}")
    last = rows[-1]
    missed = ", ".join(f"{row.false_negative.rate:.1%}" for row in rows)
    statement = (
        f"At confidence {confidence:g} (promoted once the e-value reaches {test.threshold:g}), a strategy whose "
        f"Sharpe ratio is at the floor {floor:g} is promoted in at most {alpha * 100:.3g} % of sessions however long it "
        f"trades (Ville's inequality; approximate with fat tails and a scale estimated as it goes): measured "
        f"{last.false_positive.rate:.2%} [{last.false_positive.ci_low:.2%}, {last.false_positive.ci_high:.2%}] by "
        f"market day {last.days}. A true annualised Sharpe ratio of {planted_sharpe:g} is still not promoted after "
        f"{', '.join(map(str, days))} market days in {missed} of sessions respectively."
    )
    return HorizonCurve(
        rows=rows,
        planted_sharpe=float(planted_sharpe),
        sequential=test,
        threshold=test.threshold,
        alpha=alpha,
        n_sessions=n_sessions,
        bars_per_day=bars,
        looks_per_year=looks_per_year,
        bar_vol=SYNTHETIC_BAR_VOL,
        tail_dof=dof,
        seed=int(seed),
        seed_rule=HORIZON_SEED_RULE,
        interval_confidence=CALIBRATION_CONFIDENCE,
        statement=statement,
    )


# --------------------------------------------------------------------------- per-trial records


@dataclass(frozen=True)
class CandidateRecord:
    """One trial of one simulated study, judged by every gate and the deployment decision.

    Attributes
    ----------
    study
        Index of the study (its seeds: :func:`study_seeds`).
    market
        ``"null"`` or ``"planted"``.
    planted_sharpe
        The planted Sharpe ratio (annualised); ``None`` on the null market.
    n_trials
        Trials of the study it was chosen from (its first ``n_trials``).
    candidates
        ``"best"`` (one of the study's best trials) or ``"planted_strategy"``.
    rank
        Rank by in-sample objective among the first ``n_trials`` (0 = best); ``None`` for
        the planted strategy.
    number
        Trial number.
    params
        The trial's params.
    backtest_metrics, dsr, n_completed_trials
        Gate 1's inputs: backtest-window metrics, deflated Sharpe ratio (probability) and
        the completed trials that select the phase.
    cge_summary
        Gate 2's input: the stress summary over the scenario paths.
    paper_inputs
        Gate 3's inputs: ``PaperMetrics.gate_inputs()`` of the replayed paper session.
    verdicts
        The three gate verdicts under the run's policy, as the stage functions returned them.
    decision
        The deployment decision under the run's policy (``promoted``, ``rejected``, ...).
    """

    study: int
    market: MarketKind
    planted_sharpe: float | None
    n_trials: int
    candidates: CandidateKind
    rank: int | None
    number: int
    params: dict[str, Any]
    backtest_metrics: BacktestMetrics
    dsr: float
    n_completed_trials: int
    cge_summary: dict[str, float]
    paper_inputs: dict[str, float]
    verdicts: dict[str, GateVerdict]
    decision: str

    @property
    def group(self) -> tuple[MarketKind, float | None, int, CandidateKind]:
        """The rows of the error-rate tables: market, planted Sharpe, trials, candidates."""
        return self.market, self.planted_sharpe, self.n_trials, self.candidates


def study_label(*, planted_sharpe: float | None, study: int) -> str:
    """Name of a simulated study: ``calibration-null-7`` on the null market, ``calibration-planted2-7`` at Sharpe 2."""
    kind = "null" if planted_sharpe is None else f"planted{planted_sharpe:g}"
    return f"calibration-{kind}-{study}"


#: Each gate of a record under a policy, from the record's stored gate inputs.
_GATES: dict[str, Callable[[CandidateRecord, GatePolicy], GateVerdict]] = {
    "backtest_gate": lambda record, policy: evaluate_backtest_gate(
        metrics=record.backtest_metrics, policy=policy, n_completed_trials=record.n_completed_trials, dsr=record.dsr
    ),
    "cge_gate": lambda record, policy: evaluate_cge_gate(summary=record.cge_summary, policy=policy),
    "paper_trading_gate": lambda record, policy: evaluate_paper_gate(**record.paper_inputs, policy=policy),
}


def gate_verdicts(*, record: CandidateRecord, policy: GatePolicy) -> dict[str, GateVerdict]:
    """The three gates of ``record`` under ``policy``, from its stored gate inputs.

    The stage functions compute the same inputs and call the same gate functions, so under
    the run's policy this equals ``record.verdicts``.
    """
    return {gate: evaluate(record, policy) for gate, evaluate in _GATES.items()}


def deployment_decision(
    *, study: str, number: int, params: Mapping[str, Any], verdicts: Mapping[str, GateVerdict], policy: GatePolicy
) -> str:
    """The registry's decision for one simulated trial, into an empty live set.

    Settings are the pipeline's defaults (``DeploymentPolicyResource``): auto-promotion on,
    no dry run, the grades ``policy`` requires. The live set is empty and the emergency stop
    clear, so the decision depends on the trial alone: capacity never holds a simulated trial.

    Returns
    -------
    str
        The decision kind (``promoted``, ``rejected``).
    """
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
    candidate = Candidate(
        study=study,
        number=number,
        partition_key=f"{study}__t{number:08d}",
        params_hash=hashlib.sha256(text.encode()).hexdigest(),
        code_version="calibration",
        data_hashes={},
        verdicts=dict(verdicts),
        # The calibration's forward window is drawn after its study and never seen by it: forward bars.
        paper_mode="forward",
    )
    settings = DeploymentSettings(required_grades=policy.paper.required_grades)
    return decide(candidate=candidate, settings=settings, live=[], emergency_stop=False).decision


def stage_passes(*, verdicts: Mapping[str, GateVerdict], decision: str) -> np.ndarray:
    """Whether a trial passes each of :data:`STAGES` (boolean array of shape ``(5,)``)."""
    gates = [verdicts[gate].passed for gate in GATE_ORDER]
    return np.array([*gates, all(gates), decision == "promoted"])


def record_passes(*, record: CandidateRecord, policy: GatePolicy | None = None) -> np.ndarray:
    """:func:`stage_passes` of ``record`` under the run's policy (``None``) or under ``policy``."""
    if policy is None:
        return stage_passes(verdicts=record.verdicts, decision=record.decision)
    verdicts = gate_verdicts(record=record, policy=policy)
    decision = deployment_decision(
        study=study_label(planted_sharpe=record.planted_sharpe, study=record.study),
        number=record.number, params=record.params, verdicts=verdicts, policy=policy,
    )
    return stage_passes(verdicts=verdicts, decision=decision)


# --------------------------------------------------------------------------- error rates


class RateRow(_Frozen):
    """One error rate: a stage of the chain on one group of simulated studies.

    Attributes
    ----------
    market, planted_sharpe, n_trials, candidates
        The group (see :class:`CandidateRecord`).
    stage
        One of :data:`STAGES`.
    error
        ``false_positive`` on the null market (a study passes), ``false_negative`` on a
        planted market (no trial of the study passes).
    errors, studies
        Counts.
    rate, ci_low, ci_high
        ``errors / studies`` and its Clopper-Pearson interval (fractions).
    """

    market: MarketKind
    planted_sharpe: float | None
    n_trials: int
    candidates: CandidateKind
    stage: Stage
    error: ErrorKind
    errors: int
    studies: int
    rate: float
    ci_low: float
    ci_high: float


def _study_any(records: Sequence[CandidateRecord], passes: Sequence[np.ndarray]) -> dict[tuple, dict[int, np.ndarray]]:
    """Per group and study: whether any of the study's trials passes each stage."""
    groups: dict[tuple, dict[int, np.ndarray]] = {}
    for record, passed in zip(records, passes, strict=True):
        studies = groups.setdefault(record.group, {})
        studies[record.study] = studies.get(record.study, np.zeros(len(STAGES), dtype=bool)) | passed
    return groups


def error_rates(
    *, records: Sequence[CandidateRecord], passes: Sequence[np.ndarray], confidence: float = CALIBRATION_CONFIDENCE
) -> list[RateRow]:
    """False-positive and false-negative rates per group and stage, with Clopper-Pearson intervals.

    Parameters
    ----------
    records
        Judged trials.
    passes
        :func:`stage_passes` of each record (same order).
    confidence
        Confidence of the intervals.

    Returns
    -------
    list of RateRow
        Sorted by market, planted Sharpe, trials, candidates, then in :data:`STAGES` order.
    """
    rows = []
    groups = _study_any(records, passes)
    for key in sorted(groups, key=lambda k: (k[0], k[1] or 0.0, k[2], k[3])):
        market, sharpe, n_trials, candidates = key
        matrix = np.array(list(groups[key].values()))
        studies = matrix.shape[0]
        for stage, passed in zip(STAGES, matrix.sum(axis=0), strict=True):
            errors = int(passed) if market == "null" else studies - int(passed)
            low, high = binomial_interval(successes=errors, trials=studies, confidence=confidence)
            rows.append(
                RateRow(
                    market=market, planted_sharpe=sharpe, n_trials=n_trials, candidates=candidates, stage=stage,
                    error="false_positive" if market == "null" else "false_negative",
                    errors=errors, studies=studies, rate=errors / studies, ci_low=low, ci_high=high,
                )
            )
    return rows


class CaughtRow(_Frozen):
    """Where the chain stops the trials of one group (the first failing gate, as the pipeline does).

    Attributes
    ----------
    market, planted_sharpe, n_trials, candidates
        The group.
    trials
        Judged trials in the group.
    backtest_gate, cge_gate, paper_trading_gate
        Share of the trials stopped by that gate (fractions).
    passed
        Share that passed all three gates.
    """

    market: MarketKind
    planted_sharpe: float | None
    n_trials: int
    candidates: CandidateKind
    trials: int
    backtest_gate: float
    cge_gate: float
    paper_trading_gate: float
    passed: float


def caught_by(*, records: Sequence[CandidateRecord], passes: Sequence[np.ndarray]) -> list[CaughtRow]:
    """Share of each group's trials stopped by each gate (first failure in pipeline order)."""
    by_group: dict[tuple, list[np.ndarray]] = {}
    for record, passed in zip(records, passes, strict=True):
        by_group.setdefault(record.group, []).append(passed[: len(GATE_ORDER)])
    rows = []
    for key in sorted(by_group, key=lambda k: (k[0], k[1] or 0.0, k[2], k[3])):
        gates = np.array(by_group[key])
        # argmin finds the first failed gate; a row without a failure passed them all.
        first_failure = np.where(gates.all(axis=1), len(GATE_ORDER), np.argmin(gates, axis=1))
        shares = np.bincount(first_failure, minlength=len(GATE_ORDER) + 1) / gates.shape[0]
        market, sharpe, n_trials, candidates = key
        rows.append(
            CaughtRow(
                market=market, planted_sharpe=sharpe, n_trials=n_trials, candidates=candidates, trials=gates.shape[0],
                backtest_gate=float(shares[0]), cge_gate=float(shares[1]), paper_trading_gate=float(shares[2]),
                passed=float(shares[3]),
            )
        )
    return rows


# --------------------------------------------------------------------------- threshold sweep


class SweptThresholds(_Frozen):
    """The thresholds the recommendation sweep varies; ``None`` keeps the run policy's.

    Attributes
    ----------
    backtest_min_sharpe
        Backtest Sharpe floor in every phase (annualised), in place of the phases' own floors,
        so a sweep around a strict policy also tries looser floors.
    paper_min_sharpe
        The paper grading's Sharpe floor (annualised).
    paper_min_win_rate
        The paper grading's win-rate floor (fraction; 0 makes the check always pass).
    paper_max_drawdown
        The paper grading's drawdown cap (fraction).
    required_grades
        Paper grades that pass gate 3 (and that deployment requires).
    """

    backtest_min_sharpe: float | None = None
    paper_min_sharpe: float | None = None
    paper_min_win_rate: float | None = None
    paper_max_drawdown: float | None = None
    required_grades: tuple[str, ...]


def swept_policy(*, base: GatePolicy, thresholds: SweptThresholds) -> GatePolicy:
    """``base`` with ``thresholds`` applied."""
    data = base.model_dump(mode="json")
    if thresholds.backtest_min_sharpe is not None:
        for phase in data["backtest"]["phases"]:
            phase["min_sharpe"] = thresholds.backtest_min_sharpe
    grading = data["paper"]["grading"]
    for key, value in (
        ("min_sharpe", thresholds.paper_min_sharpe),
        ("min_win_rate", thresholds.paper_min_win_rate),
        ("max_drawdown", thresholds.paper_max_drawdown),
    ):
        if value is not None:
            grading[key] = value
    data["paper"]["required_grades"] = sorted(thresholds.required_grades)
    return GatePolicy.model_validate(data)


def policy_json(policy: GatePolicy) -> dict[str, Any]:
    """``policy`` as JSON data that is the same in every process (required grades sorted).

    A frozenset's iteration order depends on the process's string-hash seed.
    """
    data = policy.model_dump(mode="json")
    data["paper"]["required_grades"] = sorted(data["paper"]["required_grades"])
    return data


def policy_overrides(*, base: GatePolicy, policy: GatePolicy) -> dict[str, Any]:
    """The keys of ``policy`` that differ from ``base``, in the shape of ``GAUNTLET_GATE_POLICY`` YAML."""

    def diff(old: Any, new: Any) -> Any:
        # Lists (the backtest phases) are replaced whole, as GatePolicyResource merges them.
        if isinstance(old, dict) and isinstance(new, dict):
            return {key: diff(old[key], new[key]) for key in new if old.get(key) != new[key]}
        return new

    return diff(policy_json(base), policy_json(policy))


class SweepPoint(_Frozen):
    """Study-level error rates of one policy of the sweep, at the target trials and planted Sharpe.

    Attributes
    ----------
    thresholds
        The policy: the run's with these thresholds.
    fp_selection, fn_selection
        Error rates on the even-numbered studies, which choose the recommendation.
    fp_holdout, fn_holdout
        Error rates on the odd-numbered studies, which test it.
    fp_all, fn_all
        Error rates on every study.
    """

    thresholds: SweptThresholds
    fp_selection: float
    fn_selection: float
    fp_holdout: float
    fn_holdout: float
    fp_all: float
    fn_all: float


def _gate_pass_matrix(records: Sequence[CandidateRecord], policies: Sequence[GatePolicy], gate: str) -> np.ndarray:
    """``passed`` of ``gate`` for every (policy, record): shape ``(len(policies), len(records))``."""
    evaluate = _GATES[gate]
    return np.array([[evaluate(r, p).passed for r in records] for p in policies], dtype=bool).reshape(
        len(policies), len(records)
    )


def sweep(
    *,
    records: Sequence[CandidateRecord],
    base: GatePolicy,
    n_trials: int,
    planted_sharpe: float,
) -> list[SweepPoint]:
    """Study-level FP and FN of a grid of policies around ``base``, with the real gate functions.

    Each gate depends on its own section of the policy only, so each gate is evaluated once
    per value of its own thresholds and the chain of every combination is the AND of those.
    The grid (``None``: the run policy's value): backtest Sharpe floor in ``(None,
    *CALIBRATION_BACKTEST_SHARPE_FLOORS)`` x paper Sharpe floor in ``(None,
    *CALIBRATION_PAPER_SHARPE_FLOORS)`` x paper win-rate floor in ``(None,
    *CALIBRATION_PAPER_WIN_RATE_FLOORS)`` x paper drawdown cap in ``(None,
    *CALIBRATION_PAPER_DRAWDOWN_CAPS)`` x required grades in ``(base's,
    *CALIBRATION_REQUIRED_GRADE_SETS)`` without repeats. The backtest floor replaces every
    phase's own floor.

    Parameters
    ----------
    records
        Judged trials; the sweep uses the ``best`` candidates of the null market and of the
        planted market ``planted_sharpe``, chosen from ``n_trials`` trials.
    base
        The run's policy.
    n_trials, planted_sharpe
        The target group.

    Returns
    -------
    list of SweepPoint
        One per policy of the grid, the ``base`` policy first.
    """
    chosen = [
        r
        for r in records
        if r.candidates == "best"
        and r.n_trials == n_trials
        and (r.market == "null" or r.planted_sharpe == planted_sharpe)
    ]
    grade_sets = [tuple(sorted(base.paper.required_grades))]
    grade_sets += [g for g in CALIBRATION_REQUIRED_GRADE_SETS if g not in grade_sets]
    backtest_grid = [
        SweptThresholds(backtest_min_sharpe=v, required_grades=grade_sets[0])
        for v in (None, *CALIBRATION_BACKTEST_SHARPE_FLOORS)
    ]
    paper_grid = [
        SweptThresholds(paper_min_sharpe=sharpe, paper_min_win_rate=win, paper_max_drawdown=drawdown, required_grades=g)
        for g in grade_sets
        for sharpe in (None, *CALIBRATION_PAPER_SHARPE_FLOORS)
        for win in (None, *CALIBRATION_PAPER_WIN_RATE_FLOORS)
        for drawdown in (None, *CALIBRATION_PAPER_DRAWDOWN_CAPS)
    ]
    backtest = _gate_pass_matrix(chosen, [swept_policy(base=base, thresholds=t) for t in backtest_grid], "backtest_gate")
    cge = _gate_pass_matrix(chosen, [base], "cge_gate")[0]
    paper = _gate_pass_matrix(chosen, [swept_policy(base=base, thresholds=t) for t in paper_grid], "paper_trading_gate")
    # One slot per (market, study): a study errs once, however many of its trials pass.
    slots: dict[tuple[str, int], int] = {}
    slot = np.array([slots.setdefault((r.market, r.study), len(slots)) for r in chosen], dtype=np.int64)
    slot_null = np.array([market == "null" for market, _ in slots], dtype=bool)
    slot_study = np.array([study for _, study in slots], dtype=np.int64)
    halves = {"selection": slot_study % 2 == 0, "holdout": slot_study % 2 == 1, "all": np.ones(len(slots), dtype=bool)}

    points = []
    for i, backtest_thresholds in enumerate(backtest_grid):
        for j, paper_thresholds in enumerate(paper_grid):
            chain = backtest[i] & cge & paper[j]
            promoted = np.bincount(slot, weights=chain, minlength=slot_null.size) > 0
            rates = {}
            # n_studies >= 2, so each half holds a null and a planted study.
            for half, mask in halves.items():
                rates[f"fp_{half}"] = float(promoted[mask & slot_null].mean())
                rates[f"fn_{half}"] = float(1.0 - promoted[mask & ~slot_null].mean())
            thresholds = paper_thresholds.model_copy(
                update={"backtest_min_sharpe": backtest_thresholds.backtest_min_sharpe}
            )
            points.append(SweepPoint(thresholds=thresholds, **rates))
    return points


def recommend(
    *, points: Sequence[SweepPoint], max_false_positive_rate: float = CALIBRATION_MAX_FALSE_POSITIVE_RATE
) -> SweepPoint:
    """The sweep point with the fewest false negatives among those with FP <= the target, on the selection half.

    Ties go to fewer false positives, then to the earlier point of the grid (the run policy's
    values come first, then looser backtest floors before stricter ones).
    When no point meets the FP target, the point with the fewest false positives.
    """
    feasible = [p for p in points if p.fp_selection <= max_false_positive_rate]
    if feasible:
        return min(feasible, key=lambda p: (p.fn_selection, p.fp_selection))
    return min(points, key=lambda p: (p.fp_selection, p.fn_selection))


# --------------------------------------------------------------------------- the report


class PolicyMeasurement(_Frozen):
    """Study-level error rates of one policy at the target (all stages, deployment decision included).

    Attributes
    ----------
    name
        ``shipped`` (the run's policy) or ``recommended``.
    overrides
        The policy's keys that differ from the run's policy (GatePolicy YAML shape).
    false_positive, false_negative
        The ``promoted`` rates of the best candidates on every study at the target.
    false_negative_planted_strategy
        The ``promoted`` false-negative rate of the planted strategy itself.
    fp_holdout, fn_holdout
        The same on the odd-numbered studies only (those that did not choose the recommendation).
    meets_target
        FP and FN point estimates within the target.
    """

    name: str
    overrides: dict[str, Any]
    false_positive: RateRow
    false_negative: RateRow | None
    false_negative_planted_strategy: RateRow | None
    fp_holdout: float
    fn_holdout: float | None
    meets_target: bool


def measure_policy(
    *,
    name: str,
    records: Sequence[CandidateRecord],
    base: GatePolicy,
    policy: GatePolicy | None,
    settings: CalibrationSettings,
) -> PolicyMeasurement:
    """Rates of ``policy`` (``None``: the run's verdicts) at the target trials and planted Sharpe."""
    target = [
        r for r in records
        if r.n_trials == settings.target_trials and (r.market == "null" or r.planted_sharpe == settings.target_sharpe)
    ]
    passes = [record_passes(record=r, policy=policy) for r in target]
    rows = {
        (row.market, row.candidates): row
        for row in error_rates(records=target, passes=passes)
        if row.stage == "promoted"
    }
    odd = [i for i, r in enumerate(target) if r.study % 2 == 1]
    holdout = {
        (row.market, row.candidates): row
        for row in error_rates(records=[target[i] for i in odd], passes=[passes[i] for i in odd])
        if row.stage == "promoted"
    }
    fp = rows[("null", "best")]
    fn = rows.get(("planted", "best"))
    return PolicyMeasurement(
        name=name,
        overrides={} if policy is None else policy_overrides(base=base, policy=policy),
        false_positive=fp,
        false_negative=fn,
        false_negative_planted_strategy=rows.get(("planted", "planted_strategy")),
        fp_holdout=holdout[("null", "best")].rate,
        fn_holdout=holdout[("planted", "best")].rate if ("planted", "best") in holdout else None,
        meets_target=fp.rate <= CALIBRATION_MAX_FALSE_POSITIVE_RATE
        and fn is not None
        and fn.rate <= CALIBRATION_MAX_FALSE_NEGATIVE_RATE,
    )


class CalibrationReport(_Frozen):
    """Everything a calibration run found, with what it needs to be repeated.

    Attributes
    ----------
    settings
        The run's settings (seed included).
    policy
        The run's gate policy (:func:`policy_json`).
    seed_rule
        How every study's seeds derive from ``settings.seed``.
    study_seeds
        ``[market seed, sampler seed]`` of each study index.
    stress_seeds
        Seeds of the shared CGE scenarios and price paths.
    planted_edges
        How each planted market was built.
    track_record
        What the paper window can establish at the target Sharpe ratio.
    rates
        Every error rate (:class:`RateRow`).
    caught_by
        Which gate stops what.
    sweep
        The threshold sweep at the target.
    shipped, recommended
        The run's policy and the sweep's recommendation, measured at the target.
    studies
        Simulated studies.
    seconds, seconds_per_study
        Wall time of the simulation, in total and per simulated study (s).
    cpu_seconds_per_study
        CPU time per simulated study (s): the wall time on an otherwise idle core.
    """

    settings: CalibrationSettings
    policy: dict[str, Any]
    seed_rule: str
    study_seeds: list[tuple[int, int]]
    stress_seeds: dict[str, int]
    planted_edges: list[PlantedEdge]
    track_record: TrackRecordStatement | None
    rates: list[RateRow]
    caught_by: list[CaughtRow]
    sweep: list[SweepPoint]
    shipped: PolicyMeasurement
    recommended: PolicyMeasurement | None
    studies: int
    seconds: float
    seconds_per_study: float
    cpu_seconds_per_study: float


SEED_RULE = (
    "study i uses numpy SeedSequence(seed, spawn_key=(i,)).generate_state(2) = (market seed, Optuna TPE sampler "
    "seed); the null and every planted market of study i share them"
)


def build_report(
    *,
    records: Sequence[CandidateRecord],
    settings: CalibrationSettings,
    policy: GatePolicy,
    planted_edges: Sequence[PlantedEdge],
    stress_seeds: Mapping[str, int],
    windows: MarketWindows,
    seconds: float,
    cpu_seconds: float,
) -> CalibrationReport:
    """Aggregate judged trials into the report.

    Parameters
    ----------
    records
        Every judged trial of the run.
    settings, policy
        The run's settings and gate policy.
    planted_edges
        The planted markets' construction.
    stress_seeds
        Seeds of the shared stress scenarios.
    windows
        One calibration market's windows (for the window lengths of the track-record bound).
    seconds, cpu_seconds
        Wall and CPU time of the simulation (s).
    """
    passes = [record_passes(record=r) for r in records]
    points: list[SweepPoint] = []
    recommended = None
    if settings.target_sharpe is not None:
        points = sweep(
            records=records, base=policy, n_trials=settings.target_trials, planted_sharpe=settings.target_sharpe
        )
        chosen = swept_policy(base=policy, thresholds=recommend(points=points).thresholds)
        recommended = measure_policy(name="recommended", records=records, base=policy, policy=chosen, settings=settings)
    track_record = (
        track_record_statement(
            sharpe=settings.target_sharpe,
            window_bars=windows.forward.n_bars,
            out_of_sample_bars=windows.backtest.n_bars + windows.forward.n_bars,
            periods_per_year=windows.forward.periods_per_year,
        )
        if settings.target_sharpe is not None
        else None
    )
    studies = settings.n_simulated_studies
    return CalibrationReport(
        settings=settings,
        policy=policy_json(policy),
        seed_rule=SEED_RULE,
        study_seeds=[
            (s.market, s.sampler) for s in (study_seeds(seed=settings.seed, study=i) for i in range(settings.n_studies))
        ],
        stress_seeds=dict(stress_seeds),
        planted_edges=list(planted_edges),
        track_record=track_record,
        rates=error_rates(records=records, passes=passes),
        caught_by=caught_by(records=records, passes=passes),
        sweep=points,
        shipped=measure_policy(name="shipped", records=records, base=policy, policy=None, settings=settings),
        recommended=recommended,
        studies=studies,
        seconds=seconds,
        seconds_per_study=seconds / studies,
        cpu_seconds_per_study=cpu_seconds / studies,
    )


def rate_table(*, rows: Sequence[RateRow], error: ErrorKind) -> list[dict[str, Any]]:
    """One row per group of ``error`` rates, one column per stage: ``"r % [low, high]"``."""
    table: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if row.error != error:
            continue
        key = (row.market, row.planted_sharpe, row.n_trials, row.candidates)
        entry = table.setdefault(
            key,
            {
                "market": row.market if row.planted_sharpe is None else f"planted SR {row.planted_sharpe:g}",
                "n_trials": row.n_trials,
                "candidates": row.candidates,
                "studies": row.studies,
            },
        )
        entry[row.stage] = f"{row.rate:.1%} [{row.ci_low:.1%}, {row.ci_high:.1%}]"
    return list(table.values())
