"""A market file with very many columns is checked in time linear in its columns, with a
bounded message (issue 20, item 7).

The fault: the duplicate-column check counted every name in the whole list of names, once per
name: quadratic, about 14 s for a file of 40,000 columns before a single row was read, and a
missing column was reported with every column found listed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulations.errors import MarketDataError
from simulations.market import load_market_file

N_EXTRA = 40_000
#: Linear work on 40,000 names takes milliseconds; quadratic takes seconds to minutes.
BUDGET_SECONDS = 3.0


def _wide_csv(path: Path, columns: list[str]) -> Path:
    row = ["2024-01-01T00:00:00Z" if c == "timestamp" else "1" for c in columns]
    path.write_text(",".join(columns) + "\n" + ",".join(row) + "\n")
    return path


@pytest.mark.parametrize(
    "required, extra, rule",
    [
        (["timestamp", "open", "high", "low", "close", "volume"], ["X0"], "duplicate_columns"),
        (["timestamp", "open", "high", "low", "close"], [], "missing_columns"),
    ],
    ids=["a duplicate at the end", "a required column missing"],
)
def test_many_columns_are_checked_in_linear_time(tmp_path: Path, required, extra, rule):
    path = _wide_csv(tmp_path / "wide.csv", [*required, *(f"x{i}" for i in range(N_EXTRA)), *extra])
    started = time.perf_counter()
    with pytest.raises(MarketDataError, match=f"rule {rule}") as caught:
        load_market_file(path=path)
    elapsed = time.perf_counter() - started
    assert elapsed < BUDGET_SECONDS, f"{elapsed:.1f}s for {N_EXTRA} columns"
    assert len(str(caught.value)) < 1_000, len(str(caught.value))
