"""Unpartitioned inputs every trial shares, so the lineage shows all trials faced the same data."""

import dagster as dg
import numpy as np

from pipeline_assets.metadata import key_value_table, png_markdown, records_table
from pipeline_assets.plots import price_windows_png
from resources.market_data import MarketDataResource
from simulations.market import MarketWindows

SHARED_GROUP = "shared"
MARKET_DATA = dg.AssetKey("market_data")
#: Assets every trial run loads; they must be materialized before any trial runs.
SHARED_ASSET_KEYS = (MARKET_DATA,)


def window_rows(windows: MarketWindows) -> list[dict[str, object]]:
    """One summary row per window (dates, bars, return, volatility, hash)."""
    rows = []
    for window in (windows.train, windows.backtest, windows.forward):
        returns = np.diff(np.log(window.close))
        rows.append(
            {
                "window": window.name,
                "start": window.start.isoformat(),
                "end": window.end.isoformat(),
                "bars": window.n_bars,
                "total_return": float(window.close[-1] / window.close[0] - 1),
                "annualised_vol": float(returns.std(ddof=1) * np.sqrt(window.periods_per_year)),
                "sha256": window.sha256[:16],
            }
        )
    return rows


@dg.asset(
    key=MARKET_DATA,
    group_name=SHARED_GROUP,
    io_manager_key="shared_io_manager",
    kinds={"polars"},
    owners=["team:quant-research"],
    description="The market every trial is judged on, cut into fixed train, backtest and forward windows.",
)
def market_data(context: dg.AssetExecutionContext, market: MarketDataResource) -> dg.Output[MarketWindows]:
    windows = market.load_windows()
    context.log.info(f"loaded {market.describe()}: hashes {windows.hashes}")
    rows = window_rows(windows)
    chart = price_windows_png([(w.name, w.close) for w in (windows.train, windows.backtest, windows.forward)])
    columns = [
        ("window", "train / backtest / forward"),
        ("start", "UTC"),
        ("end", "UTC"),
        ("bars", "count"),
        ("total_return", "fraction"),
        ("annualised_vol", "fraction per year"),
        ("sha256", "first 16 hex digits"),
    ]
    return dg.Output(
        windows,
        data_version=dg.DataVersion("-".join(windows.hashes[n][:12] for n in ("train", "backtest", "forward"))),
        metadata={
            "source": market.describe(),
            "symbol": windows.backtest.symbol,
            "bar_seconds": windows.backtest.bar_seconds,
            "windows": records_table(rows, columns),
            "hashes": key_value_table(windows.hashes, key="window", value="sha256"),
            "prices": png_markdown(chart, alt="close prices by window"),
        },
    )
