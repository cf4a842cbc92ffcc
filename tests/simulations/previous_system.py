"""The previous system's gate thresholds (DESIGN.md), which the demo keeps in gate_policies/."""

from pathlib import Path

import yaml

from simulations.gates import GatePolicy

PREVIOUS_SYSTEM_FILE = Path(__file__).resolve().parents[2] / "gate_policies" / "previous_system.yaml"


def previous_system_policy() -> GatePolicy:
    """The file read as `GatePolicyResource` reads it: its keys over the calibrated defaults."""
    return GatePolicy.model_validate(yaml.safe_load(PREVIOUS_SYSTEM_FILE.read_text()))
