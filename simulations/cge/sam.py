"""Social accounting matrices (SAMs) for the STDCGE model: parsing and validation.

A SAM is square; rows receive and columns pay, so every account's row sum (receipts)
equals its column sum (payments). The STDCGE model of Hosoe, Gasawa and Hashimoto (2010,
ch. 6) reads eight fixed accounts and treats every other account as a produced good:

========  ===================================================
CAP, LAB  factors (capital, labour)
IDT       production taxes
TRF       import tariffs
HOH       household
GOV       government
INV       savings-investment
EXT       rest of the world
========  ===================================================

The model has no flow for most cells (for example a government transfer to households),
so a non-zero entry outside the STDCGE pattern is rejected rather than silently dropped:
calibrating on a SAM whose flows the model ignores would produce an equilibrium that
does not replicate it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from simulations.constants import SAM_BALANCE_TOLERANCE
from simulations.errors import StressTestError

CAP, LAB, IDT, TRF, HOH, GOV, INV, EXT = "CAP", "LAB", "IDT", "TRF", "HOH", "GOV", "INV", "EXT"

#: Accounts with a fixed role; every other account of a SAM is a produced good.
INSTITUTIONAL_ACCOUNTS: tuple[str, ...] = (CAP, LAB, IDT, TRF, HOH, GOV, INV, EXT)

#: Primary factors, in the order the model indexes them.
FACTORS: tuple[str, ...] = (CAP, LAB)

_GOODS = "<goods>"
_FACTORS = "<factors>"

#: (row, column) blocks that may hold non-zero flows; a block name stands for every
#: good or every factor. Rows receive, columns pay.
_ALLOWED_BLOCKS: tuple[tuple[str, str], ...] = (
    (_GOODS, _GOODS),  # intermediate input
    (_FACTORS, _GOODS),  # factor payment
    (IDT, _GOODS),  # production tax
    (TRF, _GOODS),  # import tariff
    (EXT, _GOODS),  # imports
    (_GOODS, HOH),  # household consumption
    (_GOODS, GOV),  # government consumption
    (_GOODS, INV),  # investment demand
    (_GOODS, EXT),  # exports
    (HOH, _FACTORS),  # factor income
    (GOV, IDT),  # production-tax revenue
    (GOV, TRF),  # tariff revenue
    (GOV, HOH),  # direct tax
    (INV, HOH),  # household saving
    (INV, GOV),  # government saving
    (INV, EXT),  # foreign saving
)

_PACKAGED_SAM = "sam_hosoe_2x2.csv"


@dataclass(frozen=True, eq=False)
class Sam:
    """A validated, balanced social accounting matrix.

    Attributes
    ----------
    accounts
        Account labels, identical for rows and columns, in file order.
    values
        Read-only ``(k, k)`` array of flows in the SAM's currency unit; ``values[r, c]``
        is the payment from column account ``c`` to row account ``r``.
    """

    accounts: tuple[str, ...]
    values: np.ndarray

    @property
    def goods(self) -> tuple[str, ...]:
        """The produced goods: every account that is not institutional, in file order."""
        return tuple(a for a in self.accounts if a not in INSTITUTIONAL_ACCOUNTS)

    def value(self, row: str, column: str) -> float:
        """Flow paid by account ``column`` to account ``row`` (SAM currency units)."""
        return float(self.values[self._index(row), self._index(column)])

    def block(self, rows: tuple[str, ...], columns: tuple[str, ...]) -> np.ndarray:
        """Sub-matrix of flows, shape ``(len(rows), len(columns))`` (SAM currency units)."""
        r = [self._index(a) for a in rows]
        c = [self._index(a) for a in columns]
        return self.values[np.ix_(r, c)].copy()

    def _index(self, account: str) -> int:
        try:
            return self.accounts.index(account)
        except ValueError:
            raise StressTestError(f"SAM has no account {account!r}; accounts are {list(self.accounts)}") from None


def sam_from_array(*, accounts: tuple[str, ...] | list[str], values: np.ndarray, tolerance: float = SAM_BALANCE_TOLERANCE) -> Sam:
    """Validate a square matrix of flows and wrap it as a :class:`Sam`.

    Parameters
    ----------
    accounts
        Account labels for both rows and columns (the eight institutional accounts plus at
        least one good).
    values
        ``(k, k)`` finite, non-negative flows (SAM currency units); rows receive, columns pay.
    tolerance
        Largest accepted imbalance ``|row sum - column sum|`` per account, relative to
        ``max(row sum, column sum, 1)`` (dimensionless).

    Returns
    -------
    Sam
        The validated SAM with a read-only copy of ``values``.

    Raises
    ------
    StressTestError
        If the matrix is not square, labels repeat or miss an institutional account, an
        entry is negative or not finite, a flow has no STDCGE counterpart, or an account is
        not balanced (every offending account is named with its imbalance).
    """
    labels = tuple(str(a).strip() for a in accounts)
    matrix = np.array(values, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise StressTestError(f"SAM must be a square matrix, got shape {matrix.shape}")
    if len(labels) != matrix.shape[0]:
        raise StressTestError(f"SAM has {matrix.shape[0]} rows but {len(labels)} account labels")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise StressTestError(f"SAM balance tolerance must be finite and >= 0, got {tolerance}")
    duplicates = sorted({a for a in labels if labels.count(a) > 1})
    if duplicates:
        raise StressTestError(f"SAM account labels repeat: {duplicates}")
    missing = [a for a in INSTITUTIONAL_ACCOUNTS if a not in labels]
    if missing:
        raise StressTestError(f"SAM lacks the STDCGE accounts {missing}; it needs {list(INSTITUTIONAL_ACCOUNTS)} plus goods")
    goods = [a for a in labels if a not in INSTITUTIONAL_ACCOUNTS]
    if not goods:
        raise StressTestError("SAM has no goods accounts (accounts other than " + ", ".join(INSTITUTIONAL_ACCOUNTS) + ")")
    bad = np.argwhere(~np.isfinite(matrix) | (matrix < 0))
    if bad.size:
        cells = [f"({labels[r]}, {labels[c]}) = {matrix[r, c]}" for r, c in bad[:10]]
        raise StressTestError(f"SAM entries must be finite and non-negative; offending (row, column) cells: {cells}")

    allowed = np.zeros(matrix.shape, dtype=bool)
    for row, column in _ALLOWED_BLOCKS:
        allowed[np.ix_(_expand(row, labels, goods), _expand(column, labels, goods))] = True
    stray = np.argwhere(~allowed & (matrix != 0))
    if stray.size:
        cells = [f"({labels[r]}, {labels[c]}) = {matrix[r, c]}" for r, c in stray[:10]]
        raise StressTestError(
            f"SAM has flows the STDCGE model does not represent (rows receive, columns pay): {cells}; "
            "fold them into modelled flows or extend the model"
        )

    receipts, payments = matrix.sum(axis=1), matrix.sum(axis=0)
    gap = receipts - payments
    scale = np.maximum(np.maximum(receipts, payments), 1.0)
    unbalanced = np.flatnonzero(np.abs(gap) > tolerance * scale)
    if unbalanced.size:
        details = [
            f"{labels[i]}: row (receipts) {receipts[i]:.10g} vs column (payments) {payments[i]:.10g}, imbalance {gap[i]:+.6g}"
            for i in unbalanced
        ]
        raise StressTestError(f"SAM is not balanced (row sum must equal column sum per account): {'; '.join(details)}")
    matrix.flags.writeable = False
    return Sam(accounts=labels, values=matrix)


def read_sam(path: str | Path, *, tolerance: float = SAM_BALANCE_TOLERANCE) -> Sam:
    """Read a SAM from a CSV file and validate it.

    The first column holds the row labels (its header may be empty), the header row the
    column labels; empty cells are zero flows.

    Parameters
    ----------
    path
        CSV file in the format of ``simulations/cge/data/sam_hosoe_2x2.csv``.
    tolerance
        Relative balance tolerance, see :func:`sam_from_array` (dimensionless).

    Returns
    -------
    Sam
        The validated SAM.

    Raises
    ------
    StressTestError
        If the file is missing or unreadable, a cell is not a number, the column labels
        differ from the row labels, or any check of :func:`sam_from_array` fails.
    """
    source = Path(path)
    try:
        frame = pl.read_csv(source, infer_schema_length=0)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StressTestError(f"cannot read SAM file {source}: {exc}") from exc
    if frame.width < 2:
        raise StressTestError(f"SAM file {source} needs a label column and at least one account column")
    row_labels = [str(v).strip() if v is not None else "" for v in frame.get_column(frame.columns[0]).to_list()]
    column_labels = [c.strip() for c in frame.columns[1:]]
    if sorted(row_labels) != sorted(column_labels):
        raise StressTestError(
            f"SAM file {source}: row labels {row_labels} and column labels {column_labels} must name the same accounts"
        )
    values = np.zeros((len(row_labels), len(column_labels)))
    for j, column in enumerate(frame.columns[1:]):
        for i, cell in enumerate(frame.get_column(column).to_list()):
            text = "" if cell is None else cell.strip()
            if text:
                try:
                    values[i, j] = float(text)
                except ValueError:
                    raise StressTestError(
                        f"SAM file {source}: cell (row {row_labels[i]}, column {column_labels[j]}) is not a number: {cell!r}"
                    ) from None
    order = [column_labels.index(label) for label in row_labels]
    return sam_from_array(accounts=row_labels, values=values[:, order], tolerance=tolerance)


def hosoe_sam() -> Sam:
    """The 2-good SAM of Hosoe, Gasawa and Hashimoto (2010, ch. 6) shipped with the package.

    Returns
    -------
    Sam
        Goods BRD and MLK plus the eight institutional accounts (currency units of the
        textbook).
    """
    with resources.as_file(resources.files("simulations.cge") / "data" / _PACKAGED_SAM) as path:
        return read_sam(path)


def _expand(name: str, labels: tuple[str, ...], goods: list[str]) -> list[int]:
    if name == _GOODS:
        return [labels.index(g) for g in goods]
    if name == _FACTORS:
        return [labels.index(f) for f in FACTORS]
    return [labels.index(name)]
