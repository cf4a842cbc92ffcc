"""A `GatePolicy` from its defaults, a YAML file and nested overrides.

No Dagster here: the configuration validates a ``gates_file`` with it, and the commands that only
read (``gauntlet status``) load the configuration without Dagster. `GatePolicyResource` is this
function as a resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simulations.errors import ConfigurationError
from simulations.gates import GatePolicy, merge_phases
from simulations.schema import unknown_key_message


def load_gate_policy(*, path: str | None, overrides: Mapping[str, Any]) -> GatePolicy:
    """`GatePolicy` defaults, then the YAML file at ``path``, then ``overrides`` (nested, in the
    shape of `GatePolicy`; phases given by name merge into the file's phases of that name).

    Raises
    ------
    ConfigurationError
        If the file cannot be read or the result is invalid: the offending key and value, and a
        "did you mean" for an unknown key.
    """
    data: dict[str, Any] = {}
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"gate policy file {path} could not be read: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"gate policy file {path} must hold a mapping")
        data = loaded
    try:
        return GatePolicy.model_validate(_merge(data, dict(overrides)))
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigurationError(f"gate policy is invalid: {problems}") from exc
    except ValueError as exc:  # a phase named that does not exist
        raise ConfigurationError(f"gate policy is invalid: {exc}") from exc


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


def _problem(error: Any) -> str:
    """One validation error: where, what (a "did you mean" for an unknown key), and the value given."""
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{where}: {unknown_key_message(GatePolicy, error['loc'])}"
    if error["type"] == "value_error":
        return f"{where}: {error['ctx']['error']}"
    return f"{where}: {error['msg']} (got {error.get('input')!r})"
