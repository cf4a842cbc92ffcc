"""`DeploymentPolicyResource`: how passing trials are promoted (capacity lives in the registry)."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from simulations.deployment import DeploymentSettings
from simulations.gates import GatePolicy


class DeploymentPolicyResource(dg.ConfigurableResource):
    """Promotion settings. Grades come from `GatePolicy` and capacity from the registry, so
    neither is defined twice."""

    auto_promote: bool = Field(default=True, description="Promote trials that pass every gate.")
    at_capacity: Literal["keep_incumbent", "replace_weakest"] = Field(
        default="keep_incumbent", description="With every live slot taken: hold the candidate, or replace the weakest."
    )
    ranking_metric: Literal["sharpe", "total_return", "alpha", "win_rate", "max_drawdown"] = Field(
        default="sharpe", description="Paper metric that ranks live deployments for replace_weakest."
    )
    dry_run: bool = Field(default=False, description="Record what would have been done; change nothing live.")
    # Strings, not PaperMode: Dagster's config schema has no list of literals; `settings` validates them.
    paper_modes: list[str] = Field(
        default=["forward"],
        description="Paper modes whose grades may promote: 'forward' (bars that arrived after the trial); "
        "'holdout' too to promote grades of a replayed held-out window.",
    )

    def settings(self, *, policy: GatePolicy, live_capacity: int) -> DeploymentSettings:
        """The decision settings for the current gate policy and registry capacity."""
        return DeploymentSettings(
            auto_promote=self.auto_promote,
            required_grades=policy.paper.required_grades,
            live_capacity=live_capacity,
            at_capacity=self.at_capacity,
            ranking_metric=self.ranking_metric,
            dry_run=self.dry_run,
            paper_modes=frozenset(self.paper_modes),
        )
