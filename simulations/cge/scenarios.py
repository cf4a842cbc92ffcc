"""CGE stress scenarios: macro-sized shocks, solved equilibria, market regimes, price paths.

Shock design
------------
Every scenario is one point of a scrambled Sobol sequence (:class:`scipy.stats.qmc.Sobol`,
seeded) in ``d = 4 n + 3`` dimensions for ``n`` goods. Each coordinate ``u`` in [0, 1) is
turned into a shock by the empirical quantile function (linear interpolation between order
statistics, :func:`numpy.quantile`) of a historical series, so the scenarios reproduce the
historical distribution, tails included, and never leave the historical range. The history
is the quarterly US macro data shipped with statsmodels (``macrodata``, 1959Q1-2009Q3);
every series is a change over ``CGE_SHOCK_HORIZON_QUARTERS`` = 4 quarters (year-on-year,
199 overlapping observations), centred on its median so that ``u = 0.5`` is the benchmark.

====================  ============================================  ==========================
dimension             historical series (4-quarter change)           shock
====================  ============================================  ==========================
productivity, per j   log real GDP                                  ``productivity[j] = exp(x)``
import price, per i   log CPI                                       ``import_prices[i] = exp(x)``
export price, per i   log CPI                                       ``export_prices[i] = exp(x)``
tariff, per i         none (policy range, uniform)                  ``tariffs[i]`` in [0, 2]
foreign savings       investment / GDP ratio (level change)         ``x * benchmark GDP``
capital endowment     log real investment * I/K (0.10)              ``endowments["CAP"] = exp(x)``
labour endowment      log employment rate (1 - unemployment)        ``endowments["LAB"] = exp(x)``
====================  ============================================  ==========================

Why these series: in STDCGE a uniform total-factor-productivity change of x moves real GDP
by about x, so drawing productivity from year-on-year real GDP growth reproduces the spread
of historical output swings. World prices move with the general price level, whose yearly
swings CPI inflation measures (import and export prices draw independently, so terms of
trade move too). Foreign savings finance investment; yearly swings of the investment share
of GDP size how much outside financing can appear or vanish. Capital services grow with
investment weighted by I/K; labour input moves with the employment rate. The data have no
trade-policy series, so tariff multipliers span a policy range from free trade to doubled
tariffs. Resulting shock ranges (centred min .. max, ``ShockDesign.describe``):

* productivity (log multiplier): -7.1 % .. +5.0 %
* world import and export prices (log multiplier): -5.1 % .. +10.4 %
* foreign savings: -4.0 % .. +3.3 % of benchmark GDP
* capital endowment (log multiplier): -3.8 % .. +3.1 %
* labour endowment (log multiplier): -4.3 % .. +2.6 %
* tariff multiplier: 0 .. 2

Regime mapping
--------------
Each equilibrium becomes a jump-diffusion (Merton) regime for the traded asset, monotone in
its inputs:

* drift (expected arithmetic return per year)
  ``CGE_BASE_DRIFT + CGE_DRIFT_PER_OUTPUT * dlog(real GDP) + CGE_DRIFT_PER_CAPITAL_RETURN *
  dlog(real return to capital)``, changes relative to the benchmark equilibrium; real GDP
  at benchmark prices, the return to capital ``pf_CAP`` deflated by the consumer price index
  (both invariant to the numeraire);
* volatility ``CGE_BASE_VOLATILITY * (1 + CGE_VOLATILITY_PER_SHOCK_SIZE * s)`` and jump
  intensity ``CGE_BASE_JUMP_INTENSITY * (1 + CGE_JUMP_INTENSITY_PER_SHOCK_SIZE * s)``, where
  ``s`` is the shock size: the root mean square over the ``d`` dimensions of the shock
  divided by the standard deviation of its historical series (0 at the benchmark, about 1
  for a typical draw);
* jumps with normal log sizes (``CGE_JUMP_LOG_MEAN``, ``CGE_JUMP_LOG_STD``), compensated in
  the diffusion drift so that the drift stays the expected return.

Price paths on the instrument
-----------------------------
A scenario's path (:func:`instrument_paths`, :func:`scenario_paths`) is the instrument's own
history under the scenario's macro shock, so volatility, fat tails, autocorrelation and the
calendar's gaps are the instrument's and only the shock, drift included, is the CGE's. From
the history's per-bar log returns ``r`` (standard deviation ``v``, ``P`` bars a year) and its
standardised residuals ``z = (r - mean(r)) / v``, path ``s`` is

    r_s,t = d_s v / sqrt(P) - k_s**2 v**2 / 2 + k_s v z[i_s,t] + J_s,t - c_s

* ``i_s`` is a stationary block bootstrap of the history (Politis and Romano, circular):
  blocks of geometrically distributed length with mean ``STRESS_BOOTSTRAP_MEAN_BLOCK_WEEKS``
  weeks of bars, so what a strategy can earn within a block (trends, short-horizon
  autocorrelation) survives and its timing does not repeat;
* ``k_s`` is the volatility multiplier: the regime's volatility over the median regime
  volatility of the set, so the scenarios' volatility centres on the instrument's realised
  volatility and a scenario with a larger shock is proportionally more volatile;
* ``d_s`` is the regime's drift in units of volatility, ``drift / CGE_BASE_VOLATILITY`` (an
  annual Sharpe ratio: 0.125 at the benchmark), so a recession costs an instrument as many of
  its own standard deviations as it would the reference market. The history's own mean
  return is not kept: over a backtest window it is mostly noise, and keeping it would make
  every path trend the way the window happened to;
* ``J_s,t`` are the regime's jumps: a Poisson(``jump_intensity / P``) number per bar of
  normal log jumps whose mean and standard deviation are the regime's scaled by the
  instrument's annual volatility over ``CGE_BASE_VOLATILITY``, and ``c_s`` their
  compensator, so jumps add tail risk and no drift. The ``k_s**2 v**2 / 2`` term makes
  ``d_s v sqrt(P)`` the expected arithmetic return per year.

The bootstrap indices and the jumps come from two children of ``SeedSequence(seed)``; the
same seed and history give bit-identical paths. 200 paths of 4,320 bars take about 0.05 s.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from simulations.cge.model import Calibration, Equilibrium, Shocks, solve
from simulations.cge.sam import CAP, LAB
from simulations.constants import (
    CGE_BASE_DRIFT,
    CGE_BASE_JUMP_INTENSITY,
    CGE_BASE_VOLATILITY,
    CGE_DRIFT_PER_CAPITAL_RETURN,
    CGE_DRIFT_PER_OUTPUT,
    CGE_INVESTMENT_CAPITAL_RATIO,
    CGE_JUMP_INTENSITY_PER_SHOCK_SIZE,
    CGE_JUMP_LOG_MEAN,
    CGE_JUMP_LOG_STD,
    CGE_PATH_SEED,
    CGE_SCENARIO_SEED,
    CGE_SHOCK_HORIZON_QUARTERS,
    CGE_TARIFF_MULTIPLIER_MAX,
    CGE_TARIFF_MULTIPLIER_MIN,
    CGE_VOLATILITY_PER_SHOCK_SIZE,
    DAYS_PER_YEAR,
    N_CGE_SCENARIOS,
    SECONDS_PER_DAY,
    STRESS_BOOTSTRAP_MEAN_BLOCK_WEEKS,
    STRESS_MIN_HISTORY_BARS,
    SYNTHETIC_BAR_SECONDS,
)
from simulations.errors import StressTestError


@dataclass(frozen=True, eq=False)
class ShockDesign:
    """Historical samples that size the scenario shocks (centred on their medians).

    Attributes
    ----------
    output_growth
        4-quarter log change of US real GDP (productivity shocks, log multiplier).
    inflation
        4-quarter log change of the US CPI (world import and export prices, log multiplier).
    investment_share_change
        4-quarter change of real investment / real GDP (foreign savings, share of GDP).
    capital_growth
        4-quarter log change of real investment times ``CGE_INVESTMENT_CAPITAL_RATIO``
        (capital endowment, log multiplier).
    employment_growth
        4-quarter log change of the employment rate ``1 - unemp / 100`` (labour endowment,
        log multiplier).
    tariff_low, tariff_high
        Range of the uniform tariff multiplier.
    period
        Sample period of the data.
    """

    output_growth: np.ndarray
    inflation: np.ndarray
    investment_share_change: np.ndarray
    capital_growth: np.ndarray
    employment_growth: np.ndarray
    tariff_low: float
    tariff_high: float
    period: str

    @property
    def tariff_std(self) -> float:
        """Standard deviation of the uniform tariff multiplier."""
        return (self.tariff_high - self.tariff_low) / math.sqrt(12.0)

    def describe(self) -> dict[str, dict[str, float]]:
        """Min, 5 %, 95 %, max and standard deviation of every historical sample."""
        samples = {
            "output_growth": self.output_growth,
            "inflation": self.inflation,
            "investment_share_change": self.investment_share_change,
            "capital_growth": self.capital_growth,
            "employment_growth": self.employment_growth,
        }
        return {
            name: {
                "min": float(s.min()),
                "p05": float(np.quantile(s, 0.05)),
                "p95": float(np.quantile(s, 0.95)),
                "max": float(s.max()),
                "std": float(s.std(ddof=1)),
            }
            for name, s in samples.items()
        }


@dataclass(frozen=True)
class Regime:
    """Jump-diffusion parameters of the traded asset in one scenario (all per year).

    Scenario paths apply them to the instrument's own history, in units of its volatility
    (:func:`instrument_paths`).

    Attributes
    ----------
    drift
        Expected arithmetic return (per year).
    volatility
        Diffusion volatility (per square-root year).
    jump_intensity
        Expected number of jumps per year.
    jump_mean, jump_std
        Mean and standard deviation of a jump's log size.
    """

    drift: float
    volatility: float
    jump_intensity: float
    jump_mean: float
    jump_std: float


@dataclass(frozen=True, eq=False)
class ScenarioSet:
    """Solved scenarios with their market regimes.

    Attributes
    ----------
    table
        One row per scenario: ``scenario``; the shocks (``productivity_<good>``,
        ``import_price_<good>``, ``export_price_<good>``, ``tariff_<good>``,
        ``foreign_savings_change``, ``endowment_CAP``, ``endowment_LAB``); the outcomes
        (``utility``, ``gdp``, ``real_gdp``, ``real_gdp_change``, ``return_to_capital``,
        ``real_return_to_capital``, ``capital_return_change``, ``exchange_rate``,
        ``consumer_price_index``, ``walras_residual``, ``max_residual``, ``iterations``);
        the regime (``shock_size``, ``drift``, ``volatility``, ``jump_intensity``,
        ``jump_mean``, ``jump_std``). Changes are log changes from the benchmark.
    shocks
        The scenarios' shocks, in table order.
    benchmark
        The benchmark equilibrium every change is measured from.
    solve_seconds
        Wall time spent solving the scenario equilibria (s); informational, not part of
        the deterministic result.
    """

    table: pl.DataFrame
    shocks: tuple[Shocks, ...]
    benchmark: Equilibrium
    solve_seconds: float

    def regimes(self) -> list[Regime]:
        """The regime of every scenario, in table order."""
        columns = ("drift", "volatility", "jump_intensity", "jump_mean", "jump_std")
        return [Regime(**dict(zip(columns, row, strict=True))) for row in self.table.select(columns).iter_rows()]


@functools.lru_cache(maxsize=1)
def macro_shock_design() -> ShockDesign:
    """Size the scenario shocks from the quarterly US macro data shipped with statsmodels.

    Returns
    -------
    ShockDesign
        Centred 4-quarter changes of the series listed in the module docstring.
    """
    # Imported here: statsmodels.datasets pulls in pandas (~0.25 s), which only the draw needs.
    from statsmodels.datasets import macrodata

    data = macrodata.load_pandas().data
    lag = CGE_SHOCK_HORIZON_QUARTERS

    def change(values: np.ndarray) -> np.ndarray:
        delta = values[lag:] - values[:-lag]
        return delta - np.median(delta)

    gdp = data["realgdp"].to_numpy(dtype=float)
    first, last = data.iloc[0], data.iloc[-1]
    return ShockDesign(
        output_growth=change(np.log(gdp)),
        inflation=change(np.log(data["cpi"].to_numpy(dtype=float))),
        investment_share_change=change(data["realinv"].to_numpy(dtype=float) / gdp),
        capital_growth=CGE_INVESTMENT_CAPITAL_RATIO * change(np.log(data["realinv"].to_numpy(dtype=float))),
        employment_growth=change(np.log(1.0 - data["unemp"].to_numpy(dtype=float) / 100.0)),
        tariff_low=CGE_TARIFF_MULTIPLIER_MIN,
        tariff_high=CGE_TARIFF_MULTIPLIER_MAX,
        period=f"{int(first['year'])}Q{int(first['quarter'])}-{int(last['year'])}Q{int(last['quarter'])}",
    )


def draw_scenarios(
    *,
    calibration: Calibration,
    n: int = N_CGE_SCENARIOS,
    seed: int = CGE_SCENARIO_SEED,
    design: ShockDesign | None = None,
) -> list[Shocks]:
    """Draw scenario shocks with a scrambled Sobol sequence (see the module docstring).

    Parameters
    ----------
    calibration
        The calibrated model (its sectors and benchmark GDP size the shocks).
    n
        Number of scenarios (>= 1). The first ``n`` points of a ``2**ceil(log2 n)``-point
        sequence are used, which keeps Sobol's balance as far as ``n`` allows.
    seed
        Seed of the scrambling (>= 0); the same seed gives the same scenarios.
    design
        Historical samples; :func:`macro_shock_design` when ``None``.

    Returns
    -------
    list[Shocks]
        ``n`` scenarios.

    Raises
    ------
    StressTestError
        If ``n`` or ``seed`` is invalid.
    """
    _require_count(n, "n")
    _require_seed(seed)
    # Imported here: scipy.stats costs about 0.5 s to import, and every command that reads a
    # stress report imports this module; only drawing scenarios needs it.
    from scipy.stats import qmc

    design = design or macro_shock_design()
    sectors = calibration.sectors
    k = len(sectors)
    points = qmc.Sobol(d=4 * k + 3, scramble=True, seed=seed).random_base2(m=max(0, math.ceil(math.log2(n))))[:n]
    productivity = np.exp(np.quantile(design.output_growth, points[:, :k]))
    import_prices = np.exp(np.quantile(design.inflation, points[:, k : 2 * k]))
    export_prices = np.exp(np.quantile(design.inflation, points[:, 2 * k : 3 * k]))
    tariffs = design.tariff_low + (design.tariff_high - design.tariff_low) * points[:, 3 * k : 4 * k]
    foreign = np.quantile(design.investment_share_change, points[:, 4 * k]) * calibration.benchmark_gdp
    capital = np.exp(np.quantile(design.capital_growth, points[:, 4 * k + 1]))
    labour = np.exp(np.quantile(design.employment_growth, points[:, 4 * k + 2]))
    return [
        Shocks(
            productivity=dict(zip(sectors, productivity[s].tolist(), strict=True)),
            import_prices=dict(zip(sectors, import_prices[s].tolist(), strict=True)),
            export_prices=dict(zip(sectors, export_prices[s].tolist(), strict=True)),
            tariffs=dict(zip(sectors, tariffs[s].tolist(), strict=True)),
            foreign_savings_change=float(foreign[s]),
            endowments={CAP: float(capital[s]), LAB: float(labour[s])},
        )
        for s in range(n)
    ]


def shock_size(*, shocks: Shocks, calibration: Calibration, design: ShockDesign | None = None) -> float:
    """Standardised size of a shock: RMS over dimensions of shock / historical std.

    Log multipliers are divided by the standard deviation of their historical series,
    tariff multiplier minus one by the standard deviation of the uniform tariff range, the
    foreign-savings change (as a share of benchmark GDP) by that of the investment share.

    Parameters
    ----------
    shocks
        Any shocks for ``calibration`` (drawn or hand-made).
    calibration
        The calibrated model.
    design
        Historical samples; :func:`macro_shock_design` when ``None``.

    Returns
    -------
    float
        Dimensionless size, 0 at the benchmark.

    Raises
    ------
    StressTestError
        If the shocks name unknown sectors or factors.
    """
    design = design or macro_shock_design()
    sectors = calibration.sectors
    _require_known(shocks, calibration)

    def logs(values: dict[str, float], keys: Sequence[str]) -> np.ndarray:
        return np.log([values.get(key, 1.0) for key in keys])

    scaled = np.concatenate(
        [
            logs(shocks.productivity, sectors) / design.output_growth.std(ddof=1),
            logs(shocks.import_prices, sectors) / design.inflation.std(ddof=1),
            logs(shocks.export_prices, sectors) / design.inflation.std(ddof=1),
            (np.array([shocks.tariffs.get(s, 1.0) for s in sectors]) - 1.0) / design.tariff_std,
            [shocks.foreign_savings_change / calibration.benchmark_gdp / design.investment_share_change.std(ddof=1)],
            logs(shocks.endowments, (CAP,)) / design.capital_growth.std(ddof=1),
            logs(shocks.endowments, (LAB,)) / design.employment_growth.std(ddof=1),
        ]
    )
    return float(np.sqrt(np.mean(scaled**2)))


def regime_from_outcomes(*, real_gdp_change: float, capital_return_change: float, shock_size: float) -> Regime:
    """Map macro outcomes to a market regime (monotone; see the module docstring).

    Parameters
    ----------
    real_gdp_change
        Log change of real GDP from the benchmark (dimensionless).
    capital_return_change
        Log change of the real return to capital from the benchmark (dimensionless).
    shock_size
        Standardised shock size, >= 0 (:func:`shock_size`).

    Returns
    -------
    Regime
        Drift non-decreasing in both changes; volatility and jump intensity
        non-decreasing in the shock size.

    Raises
    ------
    StressTestError
        If an input is not finite or the shock size is negative.
    """
    values = {"real_gdp_change": real_gdp_change, "capital_return_change": capital_return_change, "shock_size": shock_size}
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad or shock_size < 0:
        raise StressTestError(f"regime inputs must be finite with shock_size >= 0, got {values}")
    return Regime(
        drift=CGE_BASE_DRIFT + CGE_DRIFT_PER_OUTPUT * real_gdp_change + CGE_DRIFT_PER_CAPITAL_RETURN * capital_return_change,
        volatility=CGE_BASE_VOLATILITY * (1.0 + CGE_VOLATILITY_PER_SHOCK_SIZE * shock_size),
        jump_intensity=CGE_BASE_JUMP_INTENSITY * (1.0 + CGE_JUMP_INTENSITY_PER_SHOCK_SIZE * shock_size),
        jump_mean=CGE_JUMP_LOG_MEAN,
        jump_std=CGE_JUMP_LOG_STD,
    )


def regime_from_equilibrium(*, equilibrium: Equilibrium, benchmark: Equilibrium, shock_size: float) -> Regime:
    """Market regime of a solved equilibrium, measured against the benchmark.

    Parameters
    ----------
    equilibrium
        The scenario's equilibrium.
    benchmark
        The benchmark equilibrium of the same calibration.
    shock_size
        Standardised size of the scenario's shock (:func:`shock_size`).

    Returns
    -------
    Regime
        See :func:`regime_from_outcomes`.

    Raises
    ------
    StressTestError
        If real GDP or the real return to capital is not positive in either equilibrium.
    """
    return regime_from_outcomes(**_changes(equilibrium, benchmark), shock_size=shock_size)


def solve_scenarios(
    *, calibration: Calibration, scenarios: Sequence[Shocks], design: ShockDesign | None = None
) -> ScenarioSet:
    """Solve every scenario (warm-started from the benchmark) and map it to a regime.

    Parameters
    ----------
    calibration
        The calibrated model.
    scenarios
        Shocks to solve, e.g. from :func:`draw_scenarios`.
    design
        Historical samples for the shock size; :func:`macro_shock_design` when ``None``.

    Returns
    -------
    ScenarioSet
        Shocks, outcomes and regimes, one table row per scenario.

    Raises
    ------
    StressTestError
        If there are no scenarios or one does not solve (the message names the scenario
        index, its shocks and the solver's message).
    """
    if not scenarios:
        raise StressTestError("solve_scenarios needs at least one scenario")
    design = design or macro_shock_design()
    benchmark = solve(calibration=calibration, shocks=Shocks())
    started = time.perf_counter()
    equilibria = []
    for index, shocks in enumerate(scenarios):
        try:
            equilibria.append(solve(calibration=calibration, shocks=shocks, initial=benchmark))
        except StressTestError as exc:
            raise StressTestError(f"scenario {index}: {exc.cause}") from exc
    solve_seconds = time.perf_counter() - started

    sectors = calibration.sectors
    columns: dict[str, list[float | int]] = {"scenario": list(range(len(scenarios)))}
    for prefix, attribute in (
        ("productivity", "productivity"),
        ("import_price", "import_prices"),
        ("export_price", "export_prices"),
        ("tariff", "tariffs"),
    ):
        for sector in sectors:
            columns[f"{prefix}_{sector}"] = [getattr(s, attribute).get(sector, 1.0) for s in scenarios]
    columns["foreign_savings_change"] = [s.foreign_savings_change for s in scenarios]
    for factor in calibration.factors:
        columns[f"endowment_{factor}"] = [s.endowments.get(factor, 1.0) for s in scenarios]

    rows = []
    for shocks, eq in zip(scenarios, equilibria, strict=True):
        changes = _changes(eq, benchmark)
        size = shock_size(shocks=shocks, calibration=calibration, design=design)
        regime = regime_from_outcomes(**changes, shock_size=size)
        rows.append(
            {
                "utility": eq.utility,
                "gdp": eq.gdp,
                "real_gdp": eq.real_gdp,
                "real_gdp_change": changes["real_gdp_change"],
                "return_to_capital": eq.return_to_capital,
                "real_return_to_capital": eq.real_return_to_capital,
                "capital_return_change": changes["capital_return_change"],
                "exchange_rate": eq.exchange_rate,
                "consumer_price_index": eq.consumer_price_index,
                "walras_residual": eq.walras_residual,
                "max_residual": eq.max_residual,
                "iterations": eq.iterations,
                "shock_size": size,
                "drift": regime.drift,
                "volatility": regime.volatility,
                "jump_intensity": regime.jump_intensity,
                "jump_mean": regime.jump_mean,
                "jump_std": regime.jump_std,
            }
        )
    for name in rows[0]:
        columns[name] = [row[name] for row in rows]
    schema = {name: (pl.Int64 if name in ("scenario", "iterations") else pl.Float64) for name in columns}
    return ScenarioSet(
        table=pl.DataFrame(columns, schema=schema),
        shocks=tuple(scenarios),
        benchmark=benchmark,
        solve_seconds=solve_seconds,
    )


def simulate_paths(
    *,
    drift: np.ndarray,
    volatility: np.ndarray,
    jump_intensity: np.ndarray,
    jump_mean: np.ndarray,
    jump_std: np.ndarray,
    n_bars: int,
    seed: int,
    bar_seconds: float = SYNTHETIC_BAR_SECONDS,
    start: float = 1.0,
) -> np.ndarray:
    """Simulate Merton jump-diffusion close prices, one path per regime.

    Log returns per bar of length ``dt`` (years) are
    ``(drift - volatility**2 / 2 - jump_intensity * k) dt + volatility sqrt(dt) N(0, 1)``
    plus a Poisson(``jump_intensity dt``) number of normal(``jump_mean``, ``jump_std``) log
    jumps, with ``k = exp(jump_mean + jump_std**2 / 2) - 1`` so that ``drift`` is the
    expected arithmetic return. This is the textbook reference; the scenario paths use
    :func:`textured_paths`, which puts the synthetic market's texture in place of the
    Gaussian shocks.

    Parameters
    ----------
    drift, volatility, jump_intensity, jump_mean, jump_std
        Regime parameters, shape ``(S,)``, per year (volatility per square-root year).
    n_bars
        Bars per path (>= 1), the first being ``start``.
    seed
        Seed of the generator (>= 0).
    bar_seconds
        Bar length in seconds (> 0); hourly by default.
    start
        First close price (> 0, price units).

    Returns
    -------
    numpy.ndarray
        Close prices, shape ``(S, n_bars)``, positive and finite.

    Raises
    ------
    StressTestError
        If a parameter is invalid or a path overflows.
    """
    regime = _regime_arrays(drift, volatility, jump_intensity, jump_mean, jump_std)
    dt = _checked_path_arguments(n_bars, seed, bar_seconds, start)
    rng = np.random.default_rng(seed)
    diffusion = rng.standard_normal((regime[0].shape[0], n_bars - 1))
    return _compounded(_jump_diffusion_log_returns(regime, diffusion, rng, dt), start)


def instrument_paths(
    *,
    drift: np.ndarray,
    volatility: np.ndarray,
    jump_intensity: np.ndarray,
    jump_mean: np.ndarray,
    jump_std: np.ndarray,
    history_close: np.ndarray,
    n_bars: int,
    periods_per_year: float,
    seed: int = CGE_PATH_SEED,
    mean_block_bars: float | None = None,
    start: float = 1.0,
) -> np.ndarray:
    """Close prices of the instrument under each regime: its bootstrapped history, shocked.

    The history gives the texture (volatility, tails, autocorrelation); the regime gives the
    drift, a volatility multiplier and jumps, each in units of the instrument's volatility.

    See "Price paths on the instrument" in the module docstring for the construction.

    Parameters
    ----------
    drift, volatility, jump_intensity, jump_mean, jump_std
        Regime parameters, shape ``(S,)``, per year (volatility per square-root year), as
        :func:`regime_from_outcomes` maps them for the reference market.
    history_close
        The instrument's close prices (price units, > 0, finite), oldest first, at least
        ``STRESS_MIN_HISTORY_BARS`` bars: what the paths resample.
    n_bars
        Bars per path (>= 1), the first being ``start``.
    periods_per_year
        The instrument's bars per year (> 0), from its calendar.
    seed
        Seed (>= 0); same seed and history, bit-identical paths.
    mean_block_bars
        Mean bootstrap block length in bars (>= 1); default ``STRESS_BOOTSTRAP_MEAN_BLOCK_WEEKS``
        weeks of bars.
    start
        First close price (> 0, price units).

    Returns
    -------
    numpy.ndarray
        Close prices, shape ``(S, n_bars)``, positive and finite.

    Raises
    ------
    StressTestError
        If a parameter is invalid, the history is too short, flat or not positive, or a
        path overflows.
    """
    mu, sigma, lam, jm, js = _regime_arrays(drift, volatility, jump_intensity, jump_mean, jump_std)
    _require_count(n_bars, "n_bars")
    _require_seed(seed)
    _require_positive(periods_per_year, "periods_per_year")
    _require_positive(start, "start price")
    log_returns = _history_log_returns(history_close)
    block = (
        STRESS_BOOTSTRAP_MEAN_BLOCK_WEEKS * periods_per_year * 7.0 / DAYS_PER_YEAR
        if mean_block_bars is None
        else mean_block_bars
    )
    if not (math.isfinite(block) and block >= 1.0):
        raise StressTestError(f"mean_block_bars must be >= 1 and finite, got {mean_block_bars}")
    std = float(log_returns.std(ddof=1))
    residuals = (log_returns - log_returns.mean()) / std
    bootstrap_seeds, jump_seeds = np.random.SeedSequence(int(seed)).spawn(2)
    n_paths, n_steps = sigma.shape[0], n_bars - 1
    index = stationary_bootstrap_index(
        n_history=residuals.size, shape=(n_paths, n_steps), mean_block=block, rng=np.random.default_rng(bootstrap_seeds)
    )
    median_volatility = float(np.median(sigma))
    multiplier = sigma / median_volatility if median_volatility > 0 else np.ones_like(sigma)
    annual_volatility = std * math.sqrt(periods_per_year)
    jump_scale = annual_volatility / CGE_BASE_VOLATILITY
    jump_mean_scaled, jump_std_scaled = jm * jump_scale, js * jump_scale
    rng = np.random.default_rng(jump_seeds)
    jumps = rng.poisson(lam / periods_per_year, size=(n_paths, n_steps))
    jump_noise = rng.standard_normal((n_paths, n_steps))
    compensator = lam / periods_per_year * (np.exp(jump_mean_scaled + 0.5 * jump_std_scaled**2) - 1.0)
    drift = mu / CGE_BASE_VOLATILITY * std / math.sqrt(periods_per_year)
    per_bar = (
        drift
        - 0.5 * multiplier**2 * std**2
        - compensator
        + multiplier * std * residuals[index]
        + jumps * jump_mean_scaled
        + np.sqrt(jumps) * jump_std_scaled * jump_noise
    )
    return _compounded(per_bar, start)


def stationary_bootstrap_index(
    *, n_history: int, shape: tuple[int, int], mean_block: float, rng: np.random.Generator
) -> np.ndarray:
    """Indices of a circular stationary block bootstrap (Politis and Romano, 1994).

    Each row starts a block at a uniform position; every later position starts a new block
    with probability ``1 / mean_block`` and otherwise takes the bar after the previous one
    (wrapping from the last bar to the first), so block lengths are geometric with mean
    ``mean_block`` bars.

    Parameters
    ----------
    n_history
        Number of bars resampled (>= 1).
    shape
        ``(rows, bars)`` of the index array.
    mean_block
        Mean block length in bars (>= 1).
    rng
        The generator (seeded by the caller).

    Returns
    -------
    numpy.ndarray
        Indices into the history, int64, shape ``shape``.
    """
    rows, bars = shape
    starts = rng.integers(0, n_history, size=shape)
    new_block = rng.random(shape) < 1.0 / mean_block
    new_block[:, :1] = True
    positions = np.broadcast_to(np.arange(bars), shape)
    block_begin = np.maximum.accumulate(np.where(new_block, positions, 0), axis=1)
    first = np.take_along_axis(starts, block_begin, axis=1)
    return (first + positions - block_begin) % n_history


def scenario_paths(
    *,
    scenario_set: ScenarioSet,
    history_close: np.ndarray,
    n_bars: int,
    periods_per_year: float,
    seed: int = CGE_PATH_SEED,
    start: float = 1.0,
) -> np.ndarray:
    """Close-price paths of the instrument, one per scenario, from the scenarios' regimes.

    :func:`instrument_paths` with each scenario's regime ("Price paths on the instrument" in
    the module docstring).

    Parameters
    ----------
    scenario_set
        Solved scenarios (:func:`solve_scenarios`).
    history_close
        The instrument's close prices the paths resample (price units), oldest first: the
        backtest window, out of sample for every trial.
    n_bars
        Bars per path, as long as the backtest window (>= 1).
    periods_per_year
        The instrument's bars per year.
    seed
        Seed of the path generator (>= 0); same seed, bit-identical paths.
    start
        First close price of every path (price units).

    Returns
    -------
    numpy.ndarray
        Close prices, shape ``(n_scenarios, n_bars)``, positive and finite.

    Raises
    ------
    StressTestError
        If an argument is invalid (see :func:`instrument_paths`).
    """
    table = scenario_set.table
    return instrument_paths(
        drift=table["drift"].to_numpy(),
        volatility=table["volatility"].to_numpy(),
        jump_intensity=table["jump_intensity"].to_numpy(),
        jump_mean=table["jump_mean"].to_numpy(),
        jump_std=table["jump_std"].to_numpy(),
        history_close=history_close,
        n_bars=n_bars,
        periods_per_year=periods_per_year,
        seed=seed,
        start=start,
    )


def _history_log_returns(history_close: np.ndarray) -> np.ndarray:
    """Per-bar log returns of a validated price history."""
    close = np.asarray(history_close, dtype=np.float64)
    if close.ndim != 1 or close.size < STRESS_MIN_HISTORY_BARS:
        raise StressTestError(
            f"the stress paths resample the instrument's history, which needs at least {STRESS_MIN_HISTORY_BARS} "
            f"bars before the backtest window; got {close.size if close.ndim == 1 else close.shape} "
            "(lengthen market.windows.train_days)"
        )
    if not np.all(np.isfinite(close) & (close > 0)):
        raise StressTestError("the instrument's history has non-positive or non-finite close prices")
    log_returns = np.diff(np.log(close))
    if not log_returns.std() > 0:
        raise StressTestError("the instrument's history is flat: its returns have no volatility to resample")
    return log_returns


_RegimeArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _regime_arrays(
    drift: np.ndarray, volatility: np.ndarray, jump_intensity: np.ndarray, jump_mean: np.ndarray, jump_std: np.ndarray
) -> _RegimeArrays:
    """Validated regime parameters as ``(S, 1)`` columns: drift, volatility, intensity, jump mean, jump std."""
    params = {
        "drift": np.asarray(drift, dtype=float),
        "volatility": np.asarray(volatility, dtype=float),
        "jump_intensity": np.asarray(jump_intensity, dtype=float),
        "jump_mean": np.asarray(jump_mean, dtype=float),
        "jump_std": np.asarray(jump_std, dtype=float),
    }
    shapes = {name: value.shape for name, value in params.items()}
    if len(set(shapes.values())) != 1 or params["drift"].ndim != 1:
        raise StressTestError(f"regime parameters must be 1-D arrays of one length, got shapes {shapes}")
    for name, value in params.items():
        if not np.all(np.isfinite(value)):
            raise StressTestError(f"regime parameter {name} has non-finite values")
    for name in ("volatility", "jump_intensity", "jump_std"):
        if np.any(params[name] < 0):
            raise StressTestError(f"regime parameter {name} must be >= 0, got min {params[name].min()}")
    mu, sigma, lam, jm, js = (value[:, None] for value in params.values())
    return mu, sigma, lam, jm, js


def _checked_path_arguments(n_bars: int, seed: int, bar_seconds: float, start: float) -> float:
    """Validate the path arguments; returns the bar length in years."""
    _require_count(n_bars, "n_bars")
    _require_seed(seed)
    _require_positive(bar_seconds, "bar_seconds")
    _require_positive(start, "start price")
    return bar_seconds / (SECONDS_PER_DAY * DAYS_PER_YEAR)


def _jump_diffusion_log_returns(
    regime: _RegimeArrays, shocks: np.ndarray, rng: np.random.Generator, dt: float
) -> np.ndarray:
    """Per-bar log returns of a regime given its unit-scale diffusion ``shocks``, with compensated jumps."""
    mu, sigma, lam, jm, js = regime
    shape = shocks.shape
    jumps = rng.poisson(lam * dt, size=shape)
    jump_noise = rng.standard_normal(shape)
    compensator = lam * (np.exp(jm + 0.5 * js**2) - 1.0)
    return (
        (mu - 0.5 * sigma**2 - compensator) * dt
        + sigma * math.sqrt(dt) * shocks
        + jumps * jm
        + np.sqrt(jumps) * js * jump_noise
    )


def _compounded(log_returns: np.ndarray, start: float) -> np.ndarray:
    """Close prices from per-bar log returns, the first close being ``start``."""
    log_paths = np.concatenate([np.zeros((log_returns.shape[0], 1)), np.cumsum(log_returns, axis=1)], axis=1)
    paths = start * np.exp(log_paths)
    if not np.all(np.isfinite(paths) & (paths > 0)):
        raise StressTestError("simulated paths overflowed; the regime parameters are too extreme for the horizon")
    return paths


def _changes(equilibrium: Equilibrium, benchmark: Equilibrium) -> dict[str, float]:
    levels = {
        "real GDP": (equilibrium.real_gdp, benchmark.real_gdp),
        "real return to capital": (equilibrium.real_return_to_capital, benchmark.real_return_to_capital),
    }
    bad = {name: pair for name, pair in levels.items() if not (pair[0] > 0 and pair[1] > 0)}
    if bad:
        raise StressTestError(
            f"cannot map equilibrium for shocks {equilibrium.shocks.model_dump_json()} to a regime: "
            f"non-positive (scenario, benchmark) values {bad}"
        )
    return {
        "real_gdp_change": math.log(equilibrium.real_gdp / benchmark.real_gdp),
        "capital_return_change": math.log(equilibrium.real_return_to_capital / benchmark.real_return_to_capital),
    }


def _require_known(shocks: Shocks, calibration: Calibration) -> None:
    for name, keys, axis in (
        ("productivity", shocks.productivity, calibration.sectors),
        ("import_prices", shocks.import_prices, calibration.sectors),
        ("export_prices", shocks.export_prices, calibration.sectors),
        ("tariffs", shocks.tariffs, calibration.sectors),
        ("endowments", shocks.endowments, calibration.factors),
    ):
        unknown = sorted(set(keys) - set(axis))
        if unknown:
            raise StressTestError(f"shock {name} names unknown accounts {unknown}; the model has {list(axis)}")


def _require_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise StressTestError(f"{name} must be an integer >= 1, got {value!r}")


def _require_positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise StressTestError(f"{name} must be positive and finite, got {value}")


def _require_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise StressTestError(f"seed must be an integer >= 0, got {seed!r}")
