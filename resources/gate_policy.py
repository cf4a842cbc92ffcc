"""`GatePolicyResource`: the one `GatePolicy`, from defaults, a YAML file and Dagster config."""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from simulations.gates import GatePolicy
from simulations.policy_file import load_gate_policy


class GatePolicyResource(dg.ConfigurableResource):
    """Gate thresholds: `GatePolicy` defaults, then ``path`` (YAML), then ``overrides``.

    ``overrides`` is a nested mapping in the shape of `GatePolicy`, e.g.
    ``{"cge": {"min_share_profitable": 0.5}}``, one phase's threshold
    ``{"backtest": {"phases": {"mature": {"min_dsr": 0.3}}}}`` or every phase's
    ``{"backtest": {"min_sharpe": 1.0}}``; set it in the launchpad to rerun a trial under
    different thresholds.
    """

    path: str | None = Field(default=None, description="YAML file in the shape of GatePolicy.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Nested GatePolicy overrides.")

    def policy(self) -> GatePolicy:
        """The validated policy; `ConfigurationError` names the offending key and value."""
        return load_gate_policy(path=self.path, overrides=self.overrides)
