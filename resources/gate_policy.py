"""`GatePolicyResource`: the one `GatePolicy`, from defaults, a YAML file and Dagster config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from pydantic import Field, ValidationError

from simulations.errors import ConfigurationError
from simulations.gates import GatePolicy


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class GatePolicyResource(dg.ConfigurableResource):
    """Gate thresholds: `GatePolicy` defaults, then ``path`` (YAML), then ``overrides``.

    ``overrides`` is a nested mapping in the shape of `GatePolicy`, e.g.
    ``{"cge": {"min_share_profitable": 0.5}}``; set it in the launchpad to rerun a trial
    under different thresholds.
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
        data = _merge(data, self.overrides)
        try:
            return GatePolicy.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
                for err in exc.errors()
            )
            raise ConfigurationError(f"gate policy is invalid: {problems}") from exc
