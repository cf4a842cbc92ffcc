"""STDCGE: SAM validation, calibration, benchmark replication, Walras, homogeneity, policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydantic
import pytest

from simulations.cge.model import (
    DROPPED_EQUATION,
    Shocks,
    calibrate,
    equation_residuals,
    equivalent_variation,
    remove_import_tariffs,
    solve,
)
from simulations.cge.sam import INSTITUTIONAL_ACCOUNTS, hosoe_sam, read_sam, sam_from_array
from simulations.errors import StressTestError

SHARED_SAM = Path(__file__).resolve().parents[3] / "shared" / "data" / "cge" / "sam_hosoe_2x2.csv"

#: Household utility at the benchmark, GAMS model library STDCGE (also GAMSPy's test oracle).
PUBLISHED_BENCHMARK_UTILITY = 25.508490012516

SHOCKED = Shocks(
    productivity={"BRD": 0.95},
    import_prices={"MLK": 1.08},
    export_prices={"BRD": 0.97},
    tariffs={"BRD": 1.5, "MLK": 0.5},
    foreign_savings_change=-2.0,
    endowments={"CAP": 0.98, "LAB": 1.01},
)


@pytest.fixture(scope="module")
def calibration():
    return calibrate(hosoe_sam())


def _max_residual(residuals: dict[str, np.ndarray]) -> float:
    return max(float(np.max(np.abs(r))) for r in residuals.values())


def _write_csv(path: Path, accounts: list[str], values: np.ndarray) -> Path:
    lines = ["," + ",".join(accounts)]
    for label, row in zip(accounts, values, strict=True):
        lines.append(label + "," + ",".join("" if v == 0 else repr(float(v)) for v in row))
    path.write_text("\n".join(lines) + "\n")
    return path


def three_sector_sam() -> tuple[list[str], np.ndarray]:
    """A balanced 3-good SAM: residual flows close every account by construction."""
    goods = ["AGR", "MAN", "SRV"]
    accounts = goods + list(INSTITUTIONAL_ACCOUNTS)
    idx = {a: i for i, a in enumerate(accounts)}
    sam = np.zeros((len(accounts), len(accounts)))
    intermediate = np.array([[10.0, 12.0, 4.0], [8.0, 30.0, 10.0], [5.0, 14.0, 20.0]])
    capital, labour = np.array([15.0, 40.0, 35.0]), np.array([20.0, 30.0, 60.0])
    production_tax, tariff = np.array([2.0, 6.0, 4.0]), np.array([1.0, 4.0, 0.5])
    imports = np.array([8.0, 35.0, 6.0])
    exports, government, investment = np.array([6.0, 30.0, 5.0]), np.array([3.0, 8.0, 30.0]), np.array([2.0, 25.0, 12.0])
    g = [idx[x] for x in goods]
    sam[np.ix_(g, g)] = intermediate
    sam[idx["CAP"], g], sam[idx["LAB"], g] = capital, labour
    sam[idx["IDT"], g], sam[idx["TRF"], g], sam[idx["EXT"], g] = production_tax, tariff, imports
    column_totals = sam[:, g].sum(axis=0)
    sam[g, idx["EXT"]], sam[g, idx["GOV"]], sam[g, idx["INV"]] = exports, government, investment
    sam[g, idx["HOH"]] = column_totals - intermediate.sum(axis=1) - exports - government - investment
    sam[idx["HOH"], idx["CAP"]], sam[idx["HOH"], idx["LAB"]] = capital.sum(), labour.sum()
    sam[idx["GOV"], idx["IDT"]], sam[idx["GOV"], idx["TRF"]] = production_tax.sum(), tariff.sum()
    direct_tax = 30.0
    sam[idx["GOV"], idx["HOH"]] = direct_tax
    foreign_saving = imports.sum() - exports.sum()
    government_saving = direct_tax + production_tax.sum() + tariff.sum() - government.sum()
    sam[idx["INV"], idx["EXT"]], sam[idx["INV"], idx["GOV"]] = foreign_saving, government_saving
    sam[idx["INV"], idx["HOH"]] = investment.sum() - government_saving - foreign_saving
    assert (sam >= 0).all()
    return accounts, sam


# --- SAM --------------------------------------------------------------------------------


def test_packaged_sam_is_the_shared_one_and_balances():
    sam = hosoe_sam()
    assert sam.goods == ("BRD", "MLK")
    np.testing.assert_array_equal(sam.values, read_sam(SHARED_SAM).values)
    np.testing.assert_allclose(sam.values.sum(axis=0), sam.values.sum(axis=1), rtol=0, atol=1e-12)
    assert sam.value("INV", "EXT") == 12.0  # foreign savings, row receives from column


def test_unbalanced_sam_names_accounts_and_imbalance():
    sam = hosoe_sam()
    values = sam.values.copy()
    values[sam.accounts.index("BRD"), sam.accounts.index("HOH")] += 1.5
    with pytest.raises(StressTestError, match=r"not balanced.*BRD:.*imbalance \+1\.5.*HOH:.*imbalance -1\.5"):
        sam_from_array(accounts=sam.accounts, values=values)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda a, v: (a, v[:, :-1]), "square"),
        (lambda a, v: (a, np.where(np.arange(v.size).reshape(v.shape) == 0, -1.0, v)), "non-negative"),
        (lambda a, v: (a[:-1] + ("BRD",), v), "repeat"),
        (lambda a, v: (tuple("XXX" if x == "TRF" else x for x in a), v), r"lacks the STDCGE accounts \['TRF'\]"),
    ],
)
def test_malformed_sam_is_rejected(mutate, message):
    sam = hosoe_sam()
    accounts, values = mutate(sam.accounts, sam.values.copy())
    with pytest.raises(StressTestError, match=message):
        sam_from_array(accounts=accounts, values=values)


def test_flows_outside_the_model_are_rejected():
    sam = hosoe_sam()
    values = sam.values.copy()
    hoh, gov = sam.accounts.index("HOH"), sam.accounts.index("GOV")
    values[hoh, gov] += 1.0  # a transfer the model has no equation for
    values[gov, gov] += 1.0  # keep GOV's and HOH's row and column sums equal
    values[hoh, hoh] += 1.0
    with pytest.raises(StressTestError, match=r"does not represent.*\(HOH, GOV\)"):
        sam_from_array(accounts=sam.accounts, values=values)


def test_csv_with_permuted_columns_and_bad_cells(tmp_path):
    accounts, values = three_sector_sam()
    order = list(reversed(range(len(accounts))))
    cells = [[repr(float(values[i, j])) for j in order] for i in range(len(accounts))]
    header = "," + ",".join(accounts[j] for j in order)

    def write(name: str) -> Path:
        path = tmp_path / name
        path.write_text("\n".join([header] + [a + "," + ",".join(row) for a, row in zip(accounts, cells)]) + "\n")
        return path

    np.testing.assert_array_equal(read_sam(write("permuted.csv")).values, values)
    cells[0][0] = "ten"
    with pytest.raises(StressTestError, match=r"cell \(row AGR, column EXT\) is not a number: 'ten'"):
        read_sam(write("bad.csv"))
    with pytest.raises(StressTestError, match="cannot read SAM file"):
        read_sam(tmp_path / "missing.csv")


# --- benchmark replication ----------------------------------------------------------------


def test_benchmark_values_satisfy_every_equation(calibration):
    residuals = equation_residuals(calibration=calibration, shocks=Shocks(), variables=calibration.benchmark)
    assert _max_residual(residuals) < 1e-9
    assert set(residuals) >= {"eqpy", "eqF", "eqpzd", "eqpqs", "eqpqd", "eqpf", DROPPED_EQUATION}


def test_benchmark_replicated_without_iterations_and_published_utility(calibration):
    eq = solve(calibration=calibration, shocks=Shocks())
    assert eq.converged and eq.iterations == 0
    assert abs(eq.utility - PUBLISHED_BENCHMARK_UTILITY) < 1e-6
    assert eq.max_residual < 1e-9 and eq.walras_residual < 1e-9
    assert eq.gdp == pytest.approx(102.0) and eq.real_gdp == pytest.approx(102.0)
    assert eq.return_to_capital == 1.0 and eq.exchange_rate == 1.0
    np.testing.assert_allclose(eq.quantities["Z"], calibration.benchmark.Z, rtol=1e-12)


def test_shocked_solution_satisfies_all_equations_and_walras(calibration):
    eq = solve(calibration=calibration, shocks=SHOCKED)
    assert eq.iterations > 0
    assert eq.walras_residual < 1e-8
    residuals = equation_residuals(calibration=calibration, shocks=SHOCKED, variables=eq.variables)
    assert _max_residual(residuals) < 1e-9
    # The benchmark values no longer solve the shocked model.
    stale = equation_residuals(calibration=calibration, shocks=SHOCKED, variables=calibration.benchmark)
    assert _max_residual(stale) > 1e-3


def test_warm_start_reaches_the_same_equilibrium(calibration):
    cold = solve(calibration=calibration, shocks=SHOCKED)
    warm = solve(calibration=calibration, shocks=SHOCKED, initial=cold)
    assert warm.iterations == 0
    np.testing.assert_allclose(warm.variables.Z, cold.variables.Z, rtol=1e-10)


@pytest.mark.parametrize("shocks", [Shocks(), SHOCKED], ids=["benchmark", "shocked"])
def test_homogeneity_of_degree_zero(calibration, shocks):
    base = solve(calibration=calibration, shocks=shocks)
    scaled = solve(calibration=calibration, shocks=shocks, numeraire=1.1)
    for name, quantity in base.quantities.items():
        np.testing.assert_allclose(scaled.quantities[name], quantity, rtol=1e-9, err_msg=name)
    for name, price in base.prices.items():
        np.testing.assert_allclose(scaled.prices[name], 1.1 * np.asarray(price), rtol=1e-9, err_msg=name)
    assert scaled.utility == pytest.approx(base.utility, rel=1e-9)
    assert scaled.gdp == pytest.approx(1.1 * base.gdp, rel=1e-9)
    assert scaled.real_return_to_capital == pytest.approx(base.real_return_to_capital, rel=1e-9)


def test_productivity_gain_raises_welfare_and_output(calibration):
    base = solve(calibration=calibration, shocks=Shocks())
    better = solve(calibration=calibration, shocks=Shocks(productivity={"BRD": 1.05, "MLK": 1.05}))
    assert better.utility > base.utility and better.real_gdp > base.real_gdp
    assert better.real_gdp / base.real_gdp == pytest.approx(1.05, abs=0.02)


# --- policy experiment ------------------------------------------------------------------


def test_tariff_removal_gains_welfare(calibration):
    experiment = remove_import_tariffs(calibration=calibration)
    free_trade = experiment.counterfactual
    assert np.all(free_trade.variables.Tm == 0.0)
    assert free_trade.walras_residual < 1e-8
    assert experiment.utility_change > 0
    # Textbook sign, and a sane size: positive but a few percent of consumption (50) at most.
    assert 0 < experiment.equivalent_variation < 0.05 * calibration.benchmark.Xp.sum()
    assert free_trade.variables.M.sum() > calibration.benchmark.M.sum()
    # Cobb-Douglas: EV = dUU * e(pq0, 1), and e(pq0, UU0) is benchmark consumption.
    unit_cost = calibration.benchmark.Xp.sum() / experiment.benchmark.utility
    assert experiment.equivalent_variation == pytest.approx(experiment.utility_change * unit_cost, rel=1e-12)


def test_equivalent_variation_needs_one_numeraire(calibration):
    a = solve(calibration=calibration, shocks=Shocks())
    b = solve(calibration=calibration, shocks=Shocks(), numeraire=2.0)
    with pytest.raises(StressTestError, match="one numeraire"):
        equivalent_variation(calibration=calibration, benchmark=a, counterfactual=b)


# --- failures ---------------------------------------------------------------------------


def test_absurd_shock_raises_with_shocks_and_solver_message(calibration):
    absurd = Shocks(foreign_savings_change=-1e6)
    with pytest.raises(StressTestError) as info:
        solve(calibration=calibration, shocks=absurd)
    message = str(info.value)
    assert '"foreign_savings_change":-1000000.0' in message
    assert "solver message: The iteration is not making good progress" in message
    assert info.value.stage == "cge_stress"


def test_invalid_shocks_are_rejected(calibration):
    with pytest.raises(StressTestError, match=r"productivity names unknown accounts \['RICE'\]"):
        solve(calibration=calibration, shocks=Shocks(productivity={"RICE": 1.1}))
    with pytest.raises(StressTestError, match="numeraire"):
        solve(calibration=calibration, shocks=Shocks(), numeraire=0.0)
    with pytest.raises(pydantic.ValidationError):
        Shocks(import_prices={"BRD": -1.0})
    with pytest.raises(pydantic.ValidationError):
        Shocks(foreign_savings_change=float("nan"))
    with pytest.raises(pydantic.ValidationError):
        SHOCKED.foreign_savings_change = 1.0


def test_elasticities_per_sector_and_validation():
    sam = hosoe_sam()
    custom = calibrate(sam, armington_elasticity={"BRD": 0.5, "MLK": 4.0}, transformation_elasticity=1.5)
    np.testing.assert_array_equal(custom.sigma, [0.5, 4.0])
    eq = solve(calibration=custom, shocks=Shocks())
    assert abs(eq.utility - PUBLISHED_BENCHMARK_UTILITY) < 1e-6  # elasticities do not move the benchmark
    low = solve(calibration=custom, shocks=Shocks(import_prices={"BRD": 1.2, "MLK": 1.2}))
    default = solve(calibration=calibrate(sam), shocks=Shocks(import_prices={"BRD": 1.2, "MLK": 1.2}))
    assert not np.allclose(low.variables.M, default.variables.M)
    with pytest.raises(StressTestError, match="differ from 1"):
        calibrate(sam, armington_elasticity=1.0)
    with pytest.raises(StressTestError, match=r"missing \['MLK'\]"):
        calibrate(sam, armington_elasticity={"BRD": 2.0})
    with pytest.raises(StressTestError, match="positive and finite"):
        calibrate(sam, transformation_elasticity=-2.0)


def test_sam_without_imports_in_a_sector_cannot_calibrate():
    accounts, values = three_sector_sam()
    i, ext = accounts.index("SRV"), accounts.index("EXT")
    values[ext, i] -= 6.0  # drop SRV imports and the matching foreign saving
    values[accounts.index("INV"), ext] -= 6.0
    values[accounts.index("SRV"), accounts.index("INV")] -= 6.0
    with pytest.raises(StressTestError, match=r"sectors \['SRV'\] have no imports"):
        calibrate(sam_from_array(accounts=accounts, values=values))


# --- a larger SAM -----------------------------------------------------------------------


def test_three_sector_sam_calibrates_and_replicates(tmp_path):
    accounts, values = three_sector_sam()
    sam = read_sam(_write_csv(tmp_path / "sam3.csv", accounts, values))
    calibration = calibrate(sam)
    assert calibration.sectors == ("AGR", "MAN", "SRV")
    residuals = equation_residuals(calibration=calibration, shocks=Shocks(), variables=calibration.benchmark)
    assert _max_residual(residuals) < 1e-9
    eq = solve(calibration=calibration, shocks=Shocks())
    assert eq.iterations == 0
    expected_utility = float(np.prod(calibration.benchmark.Xp**calibration.alpha))
    assert eq.utility == pytest.approx(expected_utility, rel=1e-12)
    shocked = solve(
        calibration=calibration,
        shocks=Shocks(productivity={"MAN": 0.9}, tariffs={"MAN": 0.0}, endowments={"LAB": 1.05}),
    )
    assert shocked.walras_residual < 1e-8 and shocked.max_residual < 1e-9
    assert remove_import_tariffs(calibration=calibration).equivalent_variation > 0
