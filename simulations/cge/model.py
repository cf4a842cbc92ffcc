"""The standard CGE model STDCGE of Hosoe, Gasawa and Hashimoto (2010, ch. 6).

Structure (textbook names; ``i``, ``j`` goods, ``h`` factors CAP and LAB):

* firms: Cobb-Douglas composite factor ``Y_j = b_j prod_h F_hj**beta_hj``; Leontief
  gross output ``Z_j`` from ``Y_j = ay_j Z_j`` and intermediates ``X_ij = ax_ij Z_j``;
  unit cost ``pz_j = ay_j py_j + sum_i ax_ij pq_i``; production tax ``tauz_j`` on ``pz Z``;
* CET transformation of ``Z_i`` into exports ``E_i`` and domestic supply ``D_i`` at the
  gross-of-tax price ``(1 + tauz_i) pz_i``;
* Armington CES composite ``Q_i`` of imports ``M_i`` (paying tariff ``taum_i``) and ``D_i``;
* household: factor income ``sum_h pf_h FF_h``, direct tax rate ``taud``, saving rate
  ``ssp``, Cobb-Douglas demand with budget shares ``alpha_i``, utility
  ``UU = prod_i Xp_i**alpha_i``;
* government: revenue ``Td + sum Tz + sum Tm``, saving rate ``ssg``, Cobb-Douglas demand
  with shares ``mu_i``; investment: ``Xv_i = lambda_i (Sp + Sg + epsilon Sf) / pq_i``;
* small open economy: ``pe = epsilon pWe``, ``pm = epsilon pWm``, foreign savings ``Sf``
  fixed in foreign currency, flexible exchange rate ``epsilon``; numeraire ``pf_LAB``.

Calibration follows the textbook from a SAM (rows receive, columns pay) with every
benchmark price equal to one.

Solution method. Given the prices ``pd``, ``pf_CAP``, ``epsilon`` (``pf_LAB`` is the
numeraire) every other price follows from a unit-cost or arbitrage equation, and given
outputs ``Z`` every quantity follows from a first-order condition or a demand function;
government and investment demand depend on tariff revenue, which depends on imports, so
composite demand ``Q`` solves one linear equation in closed form. What remains are
``2n + 3`` equations in ``2n + 2`` unknowns: CET zero profit and domestic-goods market
clearing for every good, the two factor markets, and the balance of payments. Walras' law
makes one redundant; the balance of payments is dropped, solved for in log-variables with
:func:`scipy.optimize.root`, and checked afterwards. Every textbook equation is then
evaluated on the full variable set (:func:`equation_residuals`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulations.cge.sam import CAP, EXT, FACTORS, GOV, HOH, IDT, INV, LAB, TRF, Sam
from simulations.constants import (
    CGE_ARMINGTON_ELASTICITY,
    CGE_RESIDUAL_TOLERANCE,
    CGE_SOLVER_MAX_EVALUATIONS,
    CGE_SOLVER_TOLERANCE,
    CGE_TRANSFORMATION_ELASTICITY,
    CGE_WALRAS_TOLERANCE,
)
from simulations.errors import StressTestError

#: The equation dropped from the solved system (Walras' law) and checked afterwards.
DROPPED_EQUATION = "eqepsilon"

_CAP_INDEX, _LAB_INDEX = FACTORS.index(CAP), FACTORS.index(LAB)

_Multiplier = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_TariffMultiplier = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Shocks(BaseModel):
    """Exogenous changes relative to the benchmark; the defaults are the benchmark itself.

    Keys are goods sectors (or factors for ``endowments``) of the calibrated SAM; a sector
    that is not named keeps its benchmark value.

    Attributes
    ----------
    productivity
        Multiplier on the scale ``b_j`` of the value-added function (total factor
        productivity of sector ``j``), dimensionless, > 0.
    import_prices
        Multiplier on the world import price ``pWm_i`` (foreign currency), > 0.
    export_prices
        Multiplier on the world export price ``pWe_i`` (foreign currency), > 0.
    tariffs
        Multiplier on the import tariff rate ``taum_i``, >= 0 (0 removes the tariff).
    foreign_savings_change
        Absolute change of foreign savings ``Sf`` (foreign-currency units of the SAM);
        negative values are capital outflows.
    endowments
        Multiplier on the factor endowment ``FF_h`` (keys ``CAP``, ``LAB``), > 0.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    productivity: dict[str, _Multiplier] = Field(default_factory=dict)
    import_prices: dict[str, _Multiplier] = Field(default_factory=dict)
    export_prices: dict[str, _Multiplier] = Field(default_factory=dict)
    tariffs: dict[str, _TariffMultiplier] = Field(default_factory=dict)
    foreign_savings_change: float = Field(default=0.0, allow_inf_nan=False)
    endowments: dict[str, _Multiplier] = Field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Variables:
    """Every endogenous variable of STDCGE, named as in the textbook.

    Quantities are in benchmark-value units of the SAM (benchmark prices are one); prices
    are in units of the numeraire (the wage ``pf_LAB``); ``epsilon`` is domestic currency
    per unit of foreign currency. Sector arrays have shape ``(n,)``, factor arrays
    ``(2,)`` ordered (CAP, LAB), ``F`` is ``(2, n)`` and ``X`` is ``(n, n)`` (row: input
    good, column: using sector).
    """

    Y: np.ndarray
    F: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    Xp: np.ndarray
    Xg: np.ndarray
    Xv: np.ndarray
    E: np.ndarray
    M: np.ndarray
    Q: np.ndarray
    D: np.ndarray
    pf: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    pq: np.ndarray
    pe: np.ndarray
    pm: np.ndarray
    pd: np.ndarray
    epsilon: float
    Sp: float
    Sg: float
    Td: float
    Tz: np.ndarray
    Tm: np.ndarray

    def is_finite_nonnegative(self) -> bool:
        """Whether every variable is finite and >= 0, as every STDCGE variable must be."""
        return all(
            bool(np.all(np.isfinite(value) & (value >= 0)))
            for value in (np.asarray(getattr(self, f.name)) for f in fields(self))
        )


@dataclass(frozen=True, eq=False)
class Calibration:
    """STDCGE parameters calibrated from a SAM (textbook names, benchmark prices one).

    Attributes
    ----------
    sam
        The source SAM.
    sectors
        Goods sectors, in SAM order.
    factors
        Factors, ``("CAP", "LAB")``.
    sigma, psi
        Armington and CET elasticities per sector (dimensionless).
    alpha, mu, lam
        Household, government and investment budget shares per good.
    beta, b
        Cobb-Douglas factor shares ``(2, n)`` and scale ``(n,)`` of the composite factor.
    ax, ay
        Intermediate ``(n, n)`` and composite-factor ``(n,)`` input coefficients.
    deltam, deltad, gamma
        Armington share and scale parameters.
    xie, xid, theta
        CET share and scale parameters.
    tauz, taum
        Production-tax and tariff rates.
    ssp, ssg, taud
        Household saving rate, government saving rate, direct-tax rate.
    endowment
        Benchmark factor endowments ``FF`` (CAP, LAB), in SAM units.
    foreign_savings
        Benchmark foreign savings ``Sf`` (foreign-currency SAM units).
    benchmark
        The benchmark values of every variable, read off the SAM.
    """

    sam: Sam
    sectors: tuple[str, ...]
    factors: tuple[str, ...]
    sigma: np.ndarray
    psi: np.ndarray
    alpha: np.ndarray
    mu: np.ndarray
    lam: np.ndarray
    beta: np.ndarray
    b: np.ndarray
    ax: np.ndarray
    ay: np.ndarray
    deltam: np.ndarray
    deltad: np.ndarray
    gamma: np.ndarray
    xie: np.ndarray
    xid: np.ndarray
    theta: np.ndarray
    tauz: np.ndarray
    taum: np.ndarray
    ssp: float
    ssg: float
    taud: float
    endowment: np.ndarray
    foreign_savings: float
    benchmark: Variables

    @property
    def eta(self) -> np.ndarray:
        """Armington substitution parameter ``(sigma - 1) / sigma``."""
        return (self.sigma - 1.0) / self.sigma

    @property
    def phi(self) -> np.ndarray:
        """CET transformation parameter ``(psi + 1) / psi``."""
        return (self.psi + 1.0) / self.psi

    @property
    def benchmark_gdp(self) -> float:
        """Benchmark GDP at market prices (SAM units): factor income plus indirect taxes."""
        v = self.benchmark
        return float(v.pf @ self.endowment + v.Tz.sum() + v.Tm.sum())


@dataclass(frozen=True, eq=False)
class Equilibrium:
    """A solved STDCGE equilibrium.

    Attributes
    ----------
    shocks
        The shocks it was solved for.
    numeraire
        The fixed wage ``pf_LAB`` (price units).
    sectors, factors
        Labels of the sector and factor axes of :attr:`variables`.
    variables
        All textbook variables.
    utility
        Household utility ``UU = prod_i Xp_i**alpha_i`` (benchmark-value units).
    gdp
        Nominal GDP at market prices, ``sum py Y + sum Tz + sum Tm`` (numeraire units).
    real_gdp
        GDP at benchmark prices, ``sum(Xp + Xg + Xv + E - M)`` (SAM units).
    consumer_price_index
        ``prod_i pq_i**alpha_i``, the Cobb-Douglas cost-of-living index (1 at the benchmark
        with numeraire 1).
    walras_residual
        Relative residual of the dropped balance-of-payments equation (dimensionless).
    max_residual
        Largest relative residual over every textbook equation (dimensionless).
    iterations
        Residual evaluations spent by the solver; 0 when the starting point already solved
        the system (the benchmark replication check).
    converged
        Always ``True`` for an equilibrium returned by :func:`solve`, which raises instead
        of returning an unconverged point.
    """

    shocks: Shocks
    numeraire: float
    sectors: tuple[str, ...]
    factors: tuple[str, ...]
    variables: Variables
    utility: float
    gdp: float
    real_gdp: float
    consumer_price_index: float
    walras_residual: float
    max_residual: float
    iterations: int
    converged: bool

    @property
    def return_to_capital(self) -> float:
        """Rental price of capital ``pf_CAP`` (numeraire units)."""
        return float(self.variables.pf[_CAP_INDEX])

    @property
    def real_return_to_capital(self) -> float:
        """``pf_CAP`` deflated by the consumer price index (benchmark consumption units)."""
        return self.return_to_capital / self.consumer_price_index

    @property
    def exchange_rate(self) -> float:
        """``epsilon``, domestic currency per unit of foreign currency."""
        return float(self.variables.epsilon)

    @property
    def prices(self) -> dict[str, np.ndarray | float]:
        """Price variables by textbook name (numeraire units)."""
        v = self.variables
        return {"pf": v.pf, "py": v.py, "pz": v.pz, "pq": v.pq, "pe": v.pe, "pm": v.pm, "pd": v.pd, "epsilon": v.epsilon}

    @property
    def quantities(self) -> dict[str, np.ndarray]:
        """Quantity variables by textbook name (SAM units)."""
        v = self.variables
        names = ("Y", "F", "X", "Z", "Xp", "Xg", "Xv", "E", "M", "Q", "D")
        return {name: getattr(v, name) for name in names}


@dataclass(frozen=True, eq=False)
class PolicyExperiment:
    """A counterfactual compared with the benchmark.

    Attributes
    ----------
    name
        What was changed.
    benchmark, counterfactual
        The two equilibria (same numeraire).
    utility_change
        ``UU_counterfactual - UU_benchmark`` (utility units).
    equivalent_variation
        Hicksian equivalent variation at benchmark prices (numeraire units).
    """

    name: str
    benchmark: Equilibrium
    counterfactual: Equilibrium
    utility_change: float
    equivalent_variation: float


def calibrate(
    sam: Sam,
    *,
    armington_elasticity: float | Mapping[str, float] = CGE_ARMINGTON_ELASTICITY,
    transformation_elasticity: float | Mapping[str, float] = CGE_TRANSFORMATION_ELASTICITY,
) -> Calibration:
    """Calibrate STDCGE to a SAM, following Hosoe, Gasawa and Hashimoto (2010, ch. 6).

    Parameters
    ----------
    sam
        A validated SAM (:func:`simulations.cge.sam.read_sam` or ``hosoe_sam``).
    armington_elasticity
        Elasticity of substitution between imports and domestic goods (dimensionless,
        > 0, != 1), one value for all sectors or one per sector name.
    transformation_elasticity
        Elasticity of transformation between exports and domestic supply (dimensionless,
        > 0), one value or one per sector name.

    Returns
    -------
    Calibration
        Parameters and benchmark values; every benchmark price is one.

    Raises
    ------
    StressTestError
        If an elasticity is invalid or names an unknown sector, or the SAM lacks a flow the
        model's functional forms need (every sector must use both factors, import, export
        and sell domestically; households, government and investment must spend).
    """
    sectors = sam.goods
    n = len(sectors)
    sigma = _per_sector(armington_elasticity, sectors, "armington_elasticity")
    psi = _per_sector(transformation_elasticity, sectors, "transformation_elasticity")
    if np.any(np.abs(sigma - 1.0) < 1e-9):
        raise StressTestError(
            "armington_elasticity must differ from 1: the CES form of STDCGE degenerates to Cobb-Douglas there "
            f"(got {dict(zip(sectors, sigma.tolist(), strict=True))}); use e.g. 0.99 or 1.01"
        )

    F0 = sam.block(FACTORS, sectors)
    X0 = sam.block(sectors, sectors)
    Tz0 = sam.block((IDT,), sectors)[0]
    Tm0 = sam.block((TRF,), sectors)[0]
    M0 = sam.block((EXT,), sectors)[0]
    Xp0 = sam.block(sectors, (HOH,))[:, 0]
    Xg0 = sam.block(sectors, (GOV,))[:, 0]
    Xv0 = sam.block(sectors, (INV,))[:, 0]
    E0 = sam.block(sectors, (EXT,))[:, 0]
    FF = sam.block((HOH,), FACTORS)[0]
    Td0, Sp0, Sg0, Sf = sam.value(GOV, HOH), sam.value(INV, HOH), sam.value(INV, GOV), sam.value(INV, EXT)
    Y0 = F0.sum(axis=0)
    Z0 = Y0 + X0.sum(axis=0)
    D0 = Z0 + Tz0 - E0
    Q0 = Xp0 + Xg0 + Xv0 + X0.sum(axis=1)

    _require_positive(F0[_CAP_INDEX], sectors, "capital input (row CAP)")
    _require_positive(F0[_LAB_INDEX], sectors, "labour input (row LAB)")
    _require_positive(M0, sectors, "imports (row EXT)")
    _require_positive(E0, sectors, "exports (column EXT)")
    _require_positive(D0, sectors, "domestic sales (output plus production tax minus exports)")
    revenue0 = Td0 + Tz0.sum() + Tm0.sum()
    for total, what in (
        (Xp0.sum(), "household consumption (column HOH, goods rows)"),
        (Xg0.sum(), "government consumption (column GOV, goods rows)"),
        (Xv0.sum(), "investment demand (column INV, goods rows)"),
        (revenue0, "government revenue (row GOV)"),
    ):
        if not total > 0:
            raise StressTestError(f"SAM cannot calibrate STDCGE: total {what} is {total}, it must be positive")

    tauz = Tz0 / Z0
    taum = Tm0 / M0
    eta = (sigma - 1.0) / sigma
    phi = (psi + 1.0) / psi
    beta = F0 / Y0
    armington_m = (1.0 + taum) * M0 ** (1.0 - eta)
    armington_d = D0 ** (1.0 - eta)
    deltam = armington_m / (armington_m + armington_d)
    deltad = armington_d / (armington_m + armington_d)
    cet_e, cet_d = E0 ** (1.0 - phi), D0 ** (1.0 - phi)
    xie = cet_e / (cet_e + cet_d)
    xid = cet_d / (cet_e + cet_d)

    ones_n, ones_f = np.ones(n), np.ones(len(FACTORS))
    benchmark = Variables(
        Y=Y0, F=F0, X=X0, Z=Z0, Xp=Xp0, Xg=Xg0, Xv=Xv0, E=E0, M=M0, Q=Q0, D=D0,
        pf=ones_f, py=ones_n, pz=ones_n, pq=ones_n, pe=ones_n, pm=ones_n, pd=ones_n,
        epsilon=1.0, Sp=Sp0, Sg=Sg0, Td=Td0, Tz=Tz0, Tm=Tm0,
    )  # fmt: skip
    calibration = Calibration(
        sam=sam,
        sectors=sectors,
        factors=FACTORS,
        sigma=sigma,
        psi=psi,
        alpha=Xp0 / Xp0.sum(),
        mu=Xg0 / Xg0.sum(),
        lam=Xv0 / (Sp0 + Sg0 + Sf),
        beta=beta,
        b=Y0 / np.prod(F0**beta, axis=0),
        ax=X0 / Z0,
        ay=Y0 / Z0,
        deltam=deltam,
        deltad=deltad,
        gamma=Q0 / (deltam * M0**eta + deltad * D0**eta) ** (1.0 / eta),
        xie=xie,
        xid=xid,
        theta=Z0 / (xie * E0**phi + xid * D0**phi) ** (1.0 / phi),
        tauz=tauz,
        taum=taum,
        ssp=Sp0 / FF.sum(),
        ssg=Sg0 / revenue0,
        taud=Td0 / FF.sum(),
        endowment=FF,
        foreign_savings=Sf,
        benchmark=benchmark,
    )
    _freeze(calibration)
    _freeze(benchmark)
    return calibration


def equation_residuals(
    *, calibration: Calibration, shocks: Shocks, variables: Variables, numeraire: float = 1.0
) -> dict[str, np.ndarray]:
    """Relative residual of every textbook equation of STDCGE at given variable values.

    Each equation ``lhs = rhs`` contributes ``(lhs - rhs) / max(|lhs|, |rhs|)`` (0 when both
    sides are exactly 0), so residuals are unit-free and comparable across equations.

    Parameters
    ----------
    calibration
        The calibrated model.
    shocks
        Exogenous values to evaluate against.
    variables
        Values of every endogenous variable (e.g. ``calibration.benchmark``).
    numeraire
        Value of the fixed wage ``pf_LAB`` (price units).

    Returns
    -------
    dict[str, numpy.ndarray]
        Residual array per equation, keyed by the textbook equation name (``eqpy``,
        ``eqF``, ..., ``eqpf``) plus ``numeraire``; ``eqepsilon`` is the balance of
        payments, the equation Walras' law makes redundant.
    """
    p = _Exogenous.build(calibration, shocks, numeraire)
    c, v = calibration, variables
    eta, phi = c.eta, c.phi
    income = v.pf @ p.endowment
    revenue = v.Td + v.Tz.sum() + v.Tm.sum()
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        return {
            "eqpy": _relative(v.Y, p.b * np.prod(v.F**c.beta, axis=0)),
            "eqF": _relative(v.F, c.beta * v.py * v.Y / v.pf[:, None]),
            "eqX": _relative(v.X, c.ax * v.Z),
            "eqY": _relative(v.Y, c.ay * v.Z),
            "eqpzs": _relative(v.pz, c.ay * v.py + c.ax.T @ v.pq),
            "eqTd": _relative(v.Td, c.taud * income),
            "eqTz": _relative(v.Tz, c.tauz * v.pz * v.Z),
            "eqTm": _relative(v.Tm, p.taum * v.pm * v.M),
            "eqXg": _relative(v.Xg, c.mu * (revenue - v.Sg) / v.pq),
            "eqXv": _relative(v.Xv, c.lam * (v.Sp + v.Sg + v.epsilon * p.foreign_savings) / v.pq),
            "eqSp": _relative(v.Sp, c.ssp * income),
            "eqSg": _relative(v.Sg, c.ssg * revenue),
            "eqXp": _relative(v.Xp, c.alpha * (income - v.Sp - v.Td) / v.pq),
            "eqpe": _relative(v.pe, v.epsilon * p.world_export_price),
            "eqpm": _relative(v.pm, v.epsilon * p.world_import_price),
            DROPPED_EQUATION: _relative(
                p.world_export_price @ v.E + p.foreign_savings, p.world_import_price @ v.M
            ),
            "eqpqs": _relative(v.Q, c.gamma * (c.deltam * v.M**eta + c.deltad * v.D**eta) ** (1.0 / eta)),
            "eqM": _relative(v.M, (c.gamma**eta * c.deltam * v.pq / ((1.0 + p.taum) * v.pm)) ** (1.0 / (1.0 - eta)) * v.Q),
            "eqD": _relative(v.D, (c.gamma**eta * c.deltad * v.pq / v.pd) ** (1.0 / (1.0 - eta)) * v.Q),
            "eqpzd": _relative(v.Z, c.theta * (c.xie * v.E**phi + c.xid * v.D**phi) ** (1.0 / phi)),
            "eqE": _relative(v.E, (c.theta**phi * c.xie * (1.0 + c.tauz) * v.pz / v.pe) ** (1.0 / (1.0 - phi)) * v.Z),
            "eqDs": _relative(v.D, (c.theta**phi * c.xid * (1.0 + c.tauz) * v.pz / v.pd) ** (1.0 / (1.0 - phi)) * v.Z),
            "eqpqd": _relative(v.Q, v.Xp + v.Xg + v.Xv + v.X.sum(axis=1)),
            "eqpf": _relative(v.F.sum(axis=1), p.endowment),
            "numeraire": _relative(v.pf[_LAB_INDEX], numeraire),
        }


def solve(
    *, calibration: Calibration, shocks: Shocks, initial: Equilibrium | None = None, numeraire: float = 1.0
) -> Equilibrium:
    """Solve STDCGE for an equilibrium under ``shocks``.

    Parameters
    ----------
    calibration
        The calibrated model.
    shocks
        Exogenous changes relative to the benchmark (``Shocks()`` is the benchmark).
    initial
        A solved equilibrium to start from (warm start); the benchmark when ``None``.
        Its prices are rescaled if it was solved with another numeraire.
    numeraire
        Value at which the wage ``pf_LAB`` is fixed (price units, > 0).

    Returns
    -------
    Equilibrium
        The solution, with every textbook equation satisfied to ``CGE_RESIDUAL_TOLERANCE``
        and the dropped balance of payments to ``CGE_WALRAS_TOLERANCE``.

    Raises
    ------
    StressTestError
        If a shock names an unknown sector or factor, the numeraire is not a positive
        finite number, or the solver does not find an economically valid equilibrium (the
        message carries the shocks and the solver's own message).
    """
    if not (math.isfinite(numeraire) and numeraire > 0):
        raise StressTestError(f"numeraire must be a positive finite price, got {numeraire}")
    if initial is not None and initial.sectors != calibration.sectors:
        raise StressTestError(
            f"initial equilibrium has sectors {list(initial.sectors)}, the calibration {list(calibration.sectors)}"
        )
    system = _System(calibration, _Exogenous.build(calibration, shocks, numeraire))
    start = system.start(initial)
    residual = system.residual(start)
    if np.all(np.isfinite(residual)) and np.max(np.abs(residual)) <= CGE_SOLVER_TOLERANCE:
        solution, evaluations, message = start, 0, "the starting point solves the system"
    else:
        # Imported here: only building the scenarios solves the model, and every process that
        # loads the definitions (each run worker among them) would pay for scipy.optimize.
        import scipy.optimize

        result = scipy.optimize.root(
            system.residual,
            start,
            method="hybr",
            options={"xtol": 1e-13, "maxfev": CGE_SOLVER_MAX_EVALUATIONS},
        )
        solution, evaluations, message = result.x, int(result.nfev), " ".join(str(result.message).split())
        residual = system.residual(solution)
    reduced_max = float(np.max(np.abs(residual))) if np.all(np.isfinite(residual)) else math.inf

    variables = system.variables(solution)
    failure = _failure(reduced_max, variables)
    if failure:
        raise StressTestError(
            f"CGE equilibrium not found for shocks {shocks.model_dump_json()}: {failure}; "
            f"solver message: {message} ({evaluations} residual evaluations)"
        )
    residuals = equation_residuals(calibration=calibration, shocks=shocks, variables=variables, numeraire=numeraire)
    walras = float(np.max(np.abs(residuals[DROPPED_EQUATION])))
    max_residual = max(float(np.max(np.abs(r))) for r in residuals.values())
    if walras > CGE_WALRAS_TOLERANCE or max_residual > CGE_RESIDUAL_TOLERANCE:
        worst = max(residuals, key=lambda name: float(np.max(np.abs(residuals[name]))))
        raise StressTestError(
            f"CGE solution for shocks {shocks.model_dump_json()} violates the model: balance-of-payments "
            f"(Walras) residual {walras:.3g}, worst equation {worst} at {max_residual:.3g}; "
            f"solver message: {message}"
        )
    return _equilibrium(calibration, shocks, numeraire, variables, walras, max_residual, evaluations)


def equivalent_variation(*, calibration: Calibration, benchmark: Equilibrium, counterfactual: Equilibrium) -> float:
    """Hicksian equivalent variation of moving from ``benchmark`` to ``counterfactual``.

    ``EV = e(pq0, UU1) - e(pq0, UU0)`` with the Cobb-Douglas expenditure function
    ``e(p, U) = U prod_i (p_i / alpha_i)**alpha_i`` at the benchmark composite prices
    ``pq0``: the change in income at benchmark prices worth the same to the household as
    the counterfactual.

    Parameters
    ----------
    calibration
        The calibrated model (budget shares ``alpha``).
    benchmark, counterfactual
        Equilibria solved with the same numeraire.

    Returns
    -------
    float
        Equivalent variation (numeraire units); positive is a welfare gain.

    Raises
    ------
    StressTestError
        If the two equilibria were solved with different numeraires.
    """
    if not math.isclose(benchmark.numeraire, counterfactual.numeraire, rel_tol=1e-12):
        raise StressTestError(
            f"equivalent variation needs one numeraire, got {benchmark.numeraire} and {counterfactual.numeraire}"
        )
    shares = calibration.alpha > 0
    unit_expenditure = float(
        np.prod((benchmark.variables.pq[shares] / calibration.alpha[shares]) ** calibration.alpha[shares])
    )
    return (counterfactual.utility - benchmark.utility) * unit_expenditure


def remove_import_tariffs(*, calibration: Calibration) -> PolicyExperiment:
    """The textbook experiment: abolish every import tariff and compare with the benchmark.

    Parameters
    ----------
    calibration
        The calibrated model.

    Returns
    -------
    PolicyExperiment
        Benchmark and tariff-free equilibria, the utility change and the equivalent
        variation (numeraire units).

    Raises
    ------
    StressTestError
        If either equilibrium does not solve.
    """
    benchmark = solve(calibration=calibration, shocks=Shocks())
    free_trade = Shocks(tariffs=dict.fromkeys(calibration.sectors, 0.0))
    counterfactual = solve(calibration=calibration, shocks=free_trade, initial=benchmark)
    return PolicyExperiment(
        name="remove all import tariffs",
        benchmark=benchmark,
        counterfactual=counterfactual,
        utility_change=counterfactual.utility - benchmark.utility,
        equivalent_variation=equivalent_variation(
            calibration=calibration, benchmark=benchmark, counterfactual=counterfactual
        ),
    )


@dataclass(frozen=True)
class _Exogenous:
    """Exogenous values after shocks, as arrays aligned with the calibration's axes."""

    b: np.ndarray
    world_import_price: np.ndarray
    world_export_price: np.ndarray
    taum: np.ndarray
    foreign_savings: float
    endowment: np.ndarray
    numeraire: float

    @classmethod
    def build(cls, calibration: Calibration, shocks: Shocks, numeraire: float) -> _Exogenous:
        sectors = calibration.sectors
        return cls(
            b=calibration.b * _multipliers(shocks.productivity, sectors, "productivity"),
            world_import_price=_multipliers(shocks.import_prices, sectors, "import_prices"),
            world_export_price=_multipliers(shocks.export_prices, sectors, "export_prices"),
            taum=calibration.taum * _multipliers(shocks.tariffs, sectors, "tariffs"),
            foreign_savings=calibration.foreign_savings + shocks.foreign_savings_change,
            endowment=calibration.endowment * _multipliers(shocks.endowments, calibration.factors, "endowments"),
            numeraire=numeraire,
        )


class _System:
    """The reduced system in the unknowns ``log pd (n), log Z (n), log pf_CAP, log epsilon``."""

    def __init__(self, calibration: Calibration, exogenous: _Exogenous) -> None:
        c, p = calibration, exogenous
        self.c, self.p = c, p
        self.n = len(c.sectors)
        self.sigma_inv = 1.0 / (1.0 - c.sigma)
        self.dm_sigma = c.deltam**c.sigma
        self.dd_sigma = c.deltad**c.sigma
        self.import_coefficient = (c.gamma**c.eta * c.deltam) ** c.sigma
        self.domestic_coefficient = (c.gamma**c.eta * c.deltad) ** c.sigma
        self.export_coefficient = (c.theta**c.phi * c.xie) ** (-c.psi)
        self.supply_coefficient = (c.theta**c.phi * c.xid) ** (-c.psi)
        self.revenue_e = c.xie ** (-c.psi)
        self.revenue_d = c.xid ** (-c.psi)
        self.log_beta_term = (c.beta * np.log(c.beta)).sum(axis=0)
        self.log_numeraire = math.log(p.numeraire)
        self.log_endowment = np.log(p.endowment)

    def start(self, initial: Equilibrium | None) -> np.ndarray:
        """Log-unknowns of ``initial`` (or the benchmark), rescaled to this numeraire."""
        source = initial.variables if initial is not None else self.c.benchmark
        scale = self.p.numeraire / (initial.numeraire if initial is not None else 1.0)
        return np.concatenate(
            [
                np.log(source.pd * scale),
                np.log(source.Z),
                [math.log(source.pf[_CAP_INDEX] * scale), math.log(source.epsilon * scale)],
            ]
        )

    def _solve_prices_quantities(self, u: np.ndarray) -> tuple[Variables, np.ndarray]:
        c, p, n = self.c, self.p, self.n
        pd = np.exp(u[:n])
        Z = np.exp(u[n : 2 * n])
        log_pf = np.empty(len(FACTORS))
        log_pf[_CAP_INDEX], log_pf[_LAB_INDEX] = u[2 * n], self.log_numeraire
        pf = np.exp(log_pf)
        epsilon = math.exp(u[2 * n + 1])

        py = np.exp(c.beta.T @ log_pf - self.log_beta_term) / p.b
        pe = epsilon * p.world_export_price
        pm = epsilon * p.world_import_price
        pm_gross = (1.0 + p.taum) * pm
        pq = (self.dm_sigma * pm_gross ** (1.0 - c.sigma) + self.dd_sigma * pd ** (1.0 - c.sigma)) ** self.sigma_inv / c.gamma
        pz = c.ay * py + c.ax.T @ pq
        p_gross = (1.0 + c.tauz) * pz
        unit_revenue = (self.revenue_e * pe ** (1.0 + c.psi) + self.revenue_d * pd ** (1.0 + c.psi)) ** (
            1.0 / (1.0 + c.psi)
        ) / c.theta

        Y = c.ay * Z
        X = c.ax * Z
        F = c.beta * (py * Y) / pf[:, None]
        E = self.export_coefficient * (p_gross / pe) ** (-c.psi) * Z
        D = self.supply_coefficient * (p_gross / pd) ** (-c.psi) * Z
        income = pf @ p.endowment
        Td = c.taud * income
        Sp = c.ssp * income
        Tz = c.tauz * pz * Z
        imports_per_q = self.import_coefficient * (pq / pm_gross) ** c.sigma
        domestic_per_q = self.domestic_coefficient * (pq / pd) ** c.sigma
        # Government and investment spending depend on tariff revenue, which depends on
        # imports: spending on good i is base_i + weight_i * Tm, and Tm = sum_i t_i Q_i.
        revenue_base = Td + Tz.sum()
        base = (
            pq * X.sum(axis=1)
            + c.alpha * (income - Sp - Td)
            + c.mu * (1.0 - c.ssg) * revenue_base
            + c.lam * (Sp + c.ssg * revenue_base + epsilon * p.foreign_savings)
        )
        weight = c.mu * (1.0 - c.ssg) + c.lam * c.ssg
        tariff_per_spending = p.taum * pm * imports_per_q / pq
        tariff_revenue = (tariff_per_spending @ base) / (1.0 - tariff_per_spending @ weight)
        Q = (base + weight * tariff_revenue) / pq
        M = imports_per_q * Q
        Tm = p.taum * pm * M
        Sg = c.ssg * (revenue_base + Tm.sum())
        variables = Variables(
            Y=Y, F=F, X=X, Z=Z,
            Xp=c.alpha * (income - Sp - Td) / pq,
            Xg=c.mu * (revenue_base + Tm.sum() - Sg) / pq,
            Xv=c.lam * (Sp + Sg + epsilon * p.foreign_savings) / pq,
            E=E, M=M, Q=Q, D=D, pf=pf, py=py, pz=pz, pq=pq, pe=pe, pm=pm, pd=pd,
            epsilon=epsilon, Sp=Sp, Sg=Sg, Td=Td, Tz=Tz, Tm=Tm,
        )  # fmt: skip
        residual = np.concatenate(
            [
                np.log(p_gross) - np.log(unit_revenue),
                np.log(domestic_per_q * Q) - np.log(D),
                np.log(F.sum(axis=1)) - self.log_endowment,
            ]
        )
        return variables, residual

    def residual(self, u: np.ndarray) -> np.ndarray:
        """CET zero profit (n), domestic-goods clearing (n), factor clearing (2), in logs."""
        # Trial steps may leave the economic domain (negative demand, overflow); the NaNs
        # they produce steer the solver back or fail it, and the result is checked anyway.
        with np.errstate(all="ignore"):
            return self._solve_prices_quantities(u)[1]

    def variables(self, u: np.ndarray) -> Variables:
        """Every textbook variable at the log-unknowns ``u``."""
        with np.errstate(all="ignore"):
            return self._solve_prices_quantities(u)[0]


def _failure(reduced_max: float, variables: Variables) -> str:
    if not math.isfinite(reduced_max):
        return "the residual is not finite at the solver's last point (the shock leaves the economic domain)"
    if reduced_max > CGE_SOLVER_TOLERANCE:
        return f"largest residual {reduced_max:.3g} exceeds the tolerance {CGE_SOLVER_TOLERANCE:g}"
    if not variables.is_finite_nonnegative():
        return "the solution has negative or non-finite prices or quantities"
    return ""


def _equilibrium(
    calibration: Calibration,
    shocks: Shocks,
    numeraire: float,
    variables: Variables,
    walras: float,
    max_residual: float,
    evaluations: int,
) -> Equilibrium:
    v, alpha = variables, calibration.alpha
    _freeze(v)
    return Equilibrium(
        shocks=shocks,
        numeraire=numeraire,
        sectors=calibration.sectors,
        factors=calibration.factors,
        variables=v,
        utility=float(np.prod(v.Xp**alpha)),
        gdp=float(v.py @ v.Y + v.Tz.sum() + v.Tm.sum()),
        real_gdp=float(np.sum(v.Xp + v.Xg + v.Xv + v.E - v.M)),
        consumer_price_index=float(np.prod(v.pq**alpha)),
        walras_residual=walras,
        max_residual=max_residual,
        iterations=evaluations,
        converged=True,
    )


def _relative(lhs: np.ndarray | float, rhs: np.ndarray | float) -> np.ndarray:
    lhs, rhs = np.asarray(lhs, dtype=float), np.asarray(rhs, dtype=float)
    scale = np.maximum(np.abs(lhs), np.abs(rhs))
    return np.where(scale > 0, (lhs - rhs) / np.where(scale > 0, scale, 1.0), 0.0)


def _per_sector(value: float | Mapping[str, float], sectors: tuple[str, ...], name: str) -> np.ndarray:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(sectors))
        missing = [s for s in sectors if s not in value]
        if unknown or missing:
            raise StressTestError(
                f"{name} must give one value per sector {list(sectors)}; unknown {unknown}, missing {missing}"
            )
        values = np.array([float(value[s]) for s in sectors])
    else:
        values = np.full(len(sectors), float(value))
    if not np.all(np.isfinite(values) & (values > 0)):
        raise StressTestError(f"{name} must be positive and finite, got {values.tolist()} for sectors {list(sectors)}")
    return values


def _multipliers(values: Mapping[str, float], axis: tuple[str, ...], name: str) -> np.ndarray:
    unknown = sorted(set(values) - set(axis))
    if unknown:
        raise StressTestError(f"shock {name} names unknown accounts {unknown}; the model has {list(axis)}")
    return np.array([values.get(a, 1.0) for a in axis])


def _require_positive(values: np.ndarray, sectors: tuple[str, ...], what: str) -> None:
    bad = [s for s, x in zip(sectors, values, strict=True) if not x > 0]
    if bad:
        raise StressTestError(
            f"SAM cannot calibrate STDCGE: sectors {bad} have no {what}; the Cobb-Douglas, CES and CET "
            "forms need it positive in every sector (merge the sector into another or add the flow)"
        )


def _freeze(obj: Calibration | Variables) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
