"""The closed sets of names that settings choose from, as `Literal` types.

Kept free of the numerics on purpose: the configuration schema is built from them, and the
commands that only read (``gauntlet status``) load the configuration without numpy or Dagster.
"""

from __future__ import annotations

from typing import Literal

#: How a paper session meets its market. ``forward``: it starts at the newest bar available
#: when its trial passed gate 2 and trades only bars that arrive afterwards (paper trading);
#: ``holdout``: it replays the forward window from its start, bars that existed before the
#: study (a re-evaluation, labelled as such on every grade and deployment record).
PaperMode = Literal["forward", "holdout"]
#: How a holdout session's bars are released: all at once (``replay``) or at a market-time
#: speed per wall-clock second (``wall``).
ClockMode = Literal["replay", "wall"]
#: What a promotion does when every live slot is taken.
AtCapacity = Literal["keep_incumbent", "replace_weakest"]
#: Paper-session metrics a live set can be ranked by (`simulations.deployment.RANKING_HIGHER_IS_BETTER`).
RankingMetric = Literal["sharpe", "total_return", "alpha", "win_rate", "max_drawdown"]
#: How gate rejections are alerted: one digest per study per tick of `gate_alert_sensor`
#: (default), one alert per rejection, or none (the UI and `gauntlet status --failed` still
#: show them; run failures are always alerted).
GateAlerts = Literal["digest", "each", "off"]
