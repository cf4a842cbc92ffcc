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

Price paths
-----------
A scenario's path (:func:`scenario_paths`, :func:`textured_paths`) has the synthetic
market's texture rather than Brownian noise, so a strategy faces the same kind of market
it was trained on (trending spells momentum can earn from, mean-reverting spells that
punish it, clustered volatility, fat tails) and the scenarios differ only by their macro
regime. For scenario ``s`` the standardised shocks ``z`` are the synthetic market's log
returns (:func:`simulations.market.synthetic_log_returns`) for a seed derived from the path
seed and ``s``, divided by their root mean square over the path (so the path keeps its
trends, mean reversion and its own small jumps). Per bar of ``dt`` years the log return is

    (drift - volatility**2 / 2 - jump_intensity * k) dt + volatility sqrt(dt) z_t + J_t

with ``J_t`` a Poisson(``jump_intensity dt``) number of normal(``jump_mean``, ``jump_std``)
log jumps and ``k = exp(jump_mean + jump_std**2 / 2) - 1``: the Merton construction of
:func:`simulate_paths` with ``z`` in place of its normal draws. Hence:

* every path's per-bar volatility is exactly the regime's diffusion volatility (its
  realised annualised volatility is that plus the regime's extra jumps, ~3 % more);
* the regime's drift shifts the expected log return per bar by ``drift dt`` with the same
  volatility and jump compensators as before, so it stays the expected arithmetic return
  per bar, annualised; like the synthetic market itself, the texture's trends make returns
  over weeks and months more dispersed than the per-bar volatility implies;
* the texture of path ``s`` is seeded by word ``s`` of ``SeedSequence(seed).spawn(2)[0]``
  (64-bit words, so it does not depend on the number of scenarios) and the regime jumps
  by the second child; the same seed gives bit-identical paths.

Paths are drawn one scenario at a time (the market process is one-dimensional, ~0.7 ms
for 4,320 bars) and combined with the regimes in one vectorised step: 200 paths of 4,320
hourly bars take about 0.15 s.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import qmc

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
    SYNTHETIC_BAR_SECONDS,
)
from simulations.errors import StressTestError
from simulations.market import synthetic_log_returns


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

    Scenario paths run them with the synthetic market's texture as the diffusion's shocks
    (:func:`textured_paths`).

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


def textured_paths(
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
    """Close prices with the synthetic market's texture, rescaled to each regime (see module docstring).

    Path ``s`` is :func:`simulate_paths`'s jump-diffusion with its Gaussian shocks replaced
    by the standardised log returns of the synthetic market
    (:func:`simulations.market.synthetic_log_returns`) for a seed derived from ``seed`` and
    ``s``: trending, mean-reverting and random-walk spells, clustered volatility, fat
    tails and the market's own jumps, divided by their root mean square over the path so
    that the diffusion's per-bar volatility is exactly ``volatility * sqrt(dt)``. The
    regime adds ``(drift - volatility**2 / 2 - jump_intensity * k) dt`` per bar and its
    compensated jumps, as in :func:`simulate_paths`.

    Parameters
    ----------
    drift, volatility, jump_intensity, jump_mean, jump_std
        Regime parameters, shape ``(S,)``, per year (volatility per square-root year).
    n_bars
        Bars per path (>= 1), the first being ``start``.
    seed
        Seed (>= 0). Path ``s``'s texture depends on ``seed`` and ``s`` only, so the first
        paths do not change when ``S`` grows; the regime jumps use a separate stream.
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
    texture_seeds, jump_seeds = np.random.SeedSequence(int(seed)).spawn(2)
    return _compounded(
        _jump_diffusion_log_returns(
            regime, _market_texture(texture_seeds, regime[0].shape[0], n_bars), np.random.default_rng(jump_seeds), dt
        ),
        start,
    )


def scenario_paths(
    *,
    scenario_set: ScenarioSet,
    n_bars: int,
    seed: int = CGE_PATH_SEED,
    bar_seconds: float = SYNTHETIC_BAR_SECONDS,
    start: float = 1.0,
) -> np.ndarray:
    """Close-price paths of the traded asset, one per scenario, from the scenarios' regimes.

    Each path has the synthetic market's texture rescaled to its scenario's regime
    (:func:`textured_paths`; "Price paths" in the module docstring).

    Parameters
    ----------
    scenario_set
        Solved scenarios (:func:`solve_scenarios`).
    n_bars
        Bars per path, as long as the backtest window (>= 1).
    seed
        Seed of the path generator (>= 0); same seed, bit-identical paths.
    bar_seconds
        Bar length in seconds; hourly by default.
    start
        First close price of every path (price units).

    Returns
    -------
    numpy.ndarray
        Close prices, shape ``(n_scenarios, n_bars)``, positive and finite.

    Raises
    ------
    StressTestError
        If an argument is invalid (see :func:`textured_paths`).
    """
    table = scenario_set.table
    return textured_paths(
        drift=table["drift"].to_numpy(),
        volatility=table["volatility"].to_numpy(),
        jump_intensity=table["jump_intensity"].to_numpy(),
        jump_mean=table["jump_mean"].to_numpy(),
        jump_std=table["jump_std"].to_numpy(),
        n_bars=n_bars,
        seed=seed,
        bar_seconds=bar_seconds,
        start=start,
    )


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
    if not (math.isfinite(bar_seconds) and bar_seconds > 0):
        raise StressTestError(f"bar_seconds must be positive and finite, got {bar_seconds}")
    if not (math.isfinite(start) and start > 0):
        raise StressTestError(f"start price must be positive and finite, got {start}")
    return bar_seconds / (SECONDS_PER_DAY * DAYS_PER_YEAR)


def _market_texture(seeds: np.random.SeedSequence, n_paths: int, n_bars: int) -> np.ndarray:
    """Synthetic-market log returns of bars ``1 .. n_bars - 1``, one seed per path, unit RMS per path.

    Path ``s`` uses the ``s``-th 64-bit word of ``seeds`` (a prefix of the stream, so it does
    not depend on ``n_paths``). The market process is one-dimensional, so paths are drawn
    one by one (~0.7 ms each); dividing by the root mean square keeps each path's mean (its
    trends) while fixing its per-bar scale.
    """
    texture = np.zeros((n_paths, n_bars - 1))
    if n_bars < 2:
        return texture
    for row, path_seed in zip(texture, seeds.generate_state(n_paths, dtype=np.uint64), strict=True):
        row[:] = synthetic_log_returns(seed=int(path_seed), n_bars=n_bars)[0][1:]
    rms = np.sqrt(np.mean(texture * texture, axis=1, keepdims=True))
    return np.divide(texture, rms, out=np.zeros_like(texture), where=rms > 0)


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


def _require_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise StressTestError(f"seed must be an integer >= 0, got {seed!r}")
