"""The demo's market feed: the synthetic market's future bars, appended at an accelerated pace.

``python -m scripts.feed --dir .gauntlet/market`` (`make up` runs it beside the demo trainer)

It writes the seeded synthetic market into a directory of Parquet files: the history at once
(`HISTORY_FILE`, the bars the demo study trains on and the gates cut their windows from), then
the market's future, one file per market day, a market hour per second by default. Gauntlet reads
the directory as it reads any user's market source (``market.file``; `make up` sets
``GAUNTLET_MARKET_FILE``): the market source sensor sees each new file, `market_data` is rebuilt
with a longer forward window, and the paper session sensor trades the new bars in every open
forward session. Only this feeder is the demo's; a real feed is whatever ingester appends files
to the directory or rows to the table.

Each file is written atomically (`resources.artifacts.atomic_write_bytes`: a temporary file the
market source ignores, then a rename), so Gauntlet never reads half a file. Started again, the feeder goes on after the newest bar in the directory.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from resources.artifacts import atomic_write_bytes
from simulations.constants import DEFAULT_MARKET_SEED, DEFAULT_SYNTHETIC_DAYS, SYNTHETIC_BAR_SECONDS, SYNTHETIC_BARS_PER_DAY
from simulations.errors import MarketDataError
from simulations.market import generate_synthetic_market, market_files

#: The history's file: named to sort before every day's file.
HISTORY_FILE = "0000-history.parquet"
#: Market days of future bars the demo feeds (at an hour a second, about 4 hours of demo).
DEFAULT_FUTURE_DAYS = 600
#: Market seconds fed per wall-clock second: a market hour per second.
DEFAULT_PACE = float(SYNTHETIC_BAR_SECONDS)


def demo_market(*, seed: int = DEFAULT_MARKET_SEED, history_days: int = DEFAULT_SYNTHETIC_DAYS,
                future_days: int = DEFAULT_FUTURE_DAYS) -> pl.DataFrame:
    """Every bar the feed will ever hold: the seeded synthetic market over ``history_days + future_days`` days."""
    return generate_synthetic_market(seed=seed, n_days=history_days + future_days)


def _write(path: Path, bars: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    bars.write_parquet(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _newest_bar(directory: Path) -> np.datetime64:
    newest = market_files(directory)[-1]
    return pl.read_parquet(newest, columns=["timestamp"])["timestamp"].to_numpy()[-1]


def seed_directory(directory: Path, *, market: pl.DataFrame, history_bars: int) -> Path:
    """Write the history (the first ``history_bars`` of ``market``) unless the directory has it; its path."""
    directory.mkdir(parents=True, exist_ok=True)
    history = directory / HISTORY_FILE
    if not history.exists():
        _write(history, market.head(history_bars))
    return history


def feed_next(directory: Path, *, market: pl.DataFrame, bars_per_file: int) -> Path | None:
    """Append the ``bars_per_file`` bars of ``market`` after the newest one in ``directory``, as a new
    file; ``None`` once the market's future is all there.

    Raises
    ------
    MarketDataError
        If the newest bar in the directory is not a bar of ``market`` (another seed's directory).
    """
    newest = _newest_bar(directory)
    stamps = market["timestamp"].to_numpy()
    position = int(np.searchsorted(stamps, newest))
    if position >= stamps.size or stamps[position] != newest:
        raise MarketDataError(
            f"market directory {directory}: its newest bar {newest} is not a bar of the demo market; "
            "remove the directory (make clean-state) or give the seed it was fed with"
        )
    chunk = market.slice(position + 1, bars_per_file)
    if chunk.is_empty():
        return None
    path = directory / f"bars-{chunk['timestamp'][0]:%Y%m%dT%H%M}.parquet"
    _write(path, chunk)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, required=True, help="the market directory (created and seeded if empty)")
    parser.add_argument("--seed", type=int, default=DEFAULT_MARKET_SEED, help="synthetic market seed")
    parser.add_argument("--history-days", type=int, default=DEFAULT_SYNTHETIC_DAYS, help="days written at once")
    parser.add_argument("--future-days", type=int, default=DEFAULT_FUTURE_DAYS, help="days fed afterwards")
    parser.add_argument("--pace", type=float, default=DEFAULT_PACE, help="market seconds fed per second")
    parser.add_argument("--bars-per-file", type=int, default=SYNTHETIC_BARS_PER_DAY, help="bars per appended file")
    args = parser.parse_args(argv)
    if args.pace <= 0 or args.bars_per_file < 1:
        parser.error("--pace must be > 0 and --bars-per-file >= 1")
    market = demo_market(seed=args.seed, history_days=args.history_days, future_days=args.future_days)
    seed_directory(args.dir, market=market, history_bars=args.history_days * SYNTHETIC_BARS_PER_DAY)
    interval = args.bars_per_file * SYNTHETIC_BAR_SECONDS / args.pace
    print(f"market feed: {args.dir}, {args.bars_per_file} bars every {interval:g} s", flush=True)
    while (path := feed_next(args.dir, market=market, bars_per_file=args.bars_per_file)) is not None:
        print(f"market feed: {path.name}", flush=True)
        time.sleep(interval)
    print("market feed: the demo market's future is all fed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
