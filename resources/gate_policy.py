"""`GatePolicyResource`: the one `GatePolicy`, from defaults, a YAML file and Dagster config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field, ValidationError

from simulations.errors import ConfigurationError
from simulations.gates import GatePolicy, merge_phases
from simulations.schema import unknown_key_message


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, mappings merged key by key; phases given by name merge into the
    file's phases of that name (`merge_phases`)."""
    merged = dict(base)
    for key, value in override.items():
        if key == "phases" and isinstance(value, dict) and isinstance(merged.get(key), list):
            merged[key] = merge_phases(merged[key], value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


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
        data: dict[str, Any] = {}
        if self.path:
            try:
                loaded = yaml.safe_load(Path(self.path).read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigurationError(f"gate policy file {self.path} could not be read: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigurationError(f"gate policy file {self.path} must hold a mapping")
            data = loaded
        try:
            return GatePolicy.model_validate(_merge(data, self.overrides))
        except ValidationError as exc:
            problems = "; ".join(_problem(err) for err in exc.errors())
            raise ConfigurationError(f"gate policy is invalid: {problems}") from exc
        except ValueError as exc:  # a phase named that does not exist
            raise ConfigurationError(f"gate policy is invalid: {exc}") from exc


def _problem(error: Any) -> str:
    """One validation error: where, what (a "did you mean" for an unknown key), and the value given."""
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{where}: {unknown_key_message(GatePolicy, error['loc'])}"
    if error["type"] == "value_error":
        return f"{where}: {error['ctx']['error']}"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"
