"""`TrialSnapshot`: the only shape in which a trial exists after the Optuna resource boundary."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
)

from simulations.errors import TrialDataError

JsonScalar = str | int | float | bool | None


class TrialState(StrEnum):
    """Lifecycle state of a trial, mirroring Optuna's without depending on it."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"
    WAITING = "WAITING"


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def _check_json(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable with finite numbers: {exc}") from exc


class TrialSnapshot(BaseModel):
    """An immutable copy of one finished Optuna trial.

    Attributes
    ----------
    study_name
        Name of the Optuna study the trial belongs to.
    number
        The trial's number within its study (0-based, as Optuna numbers them).
    trial_id
        The storage-wide trial id (unique across studies in one storage).
    state
        Lifecycle state; only ``COMPLETE`` trials enter the gauntlet.
    params
        Sampled hyper-parameters, JSON scalars only.
    values
        Objective value(s); finite floats, one per objective.
    user_attrs
        JSON-serialisable attributes set by the trainer (``strategy`` names the strategy).
    datetime_start, datetime_complete
        UTC timestamps from the storage.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    study_name: str = Field(min_length=1)
    number: int = Field(ge=0)
    trial_id: int = Field(ge=0)
    state: TrialState
    params: dict[str, JsonScalar]
    values: tuple[float, ...] | None
    user_attrs: dict[str, Any] = Field(default_factory=dict)
    datetime_start: dt.datetime | None = None
    datetime_complete: dt.datetime | None = None

    @field_validator("values")
    @classmethod
    def _finite_values(cls, values: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if values is not None:
            bad = [v for v in values if not math.isfinite(v)]
            if bad:
                raise ValueError(f"objective values must be finite, got {bad}")
        return values

    @field_validator("params")
    @classmethod
    def _json_params(cls, params: dict[str, JsonScalar]) -> dict[str, JsonScalar]:
        _check_json("params", params)
        return params

    @field_validator("user_attrs")
    @classmethod
    def _json_user_attrs(cls, user_attrs: dict[str, Any]) -> dict[str, Any]:
        _check_json("user_attrs", user_attrs)
        return user_attrs

    @computed_field  # type: ignore[prop-decorator]
    @property
    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of every field: equal hashes, equal trials."""
        payload = self.model_dump(mode="json", exclude={"content_hash"})
        return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()

    @property
    def value(self) -> float | None:
        """The first objective value, or ``None`` when the trial has none."""
        return self.values[0] if self.values else None

    @property
    def label(self) -> str:
        """Human-readable reference, ``study#number``."""
        return f"{self.study_name}#{self.number}"

    @classmethod
    def build(cls, **fields: Any) -> TrialSnapshot:
        """Validate ``fields`` into a snapshot, raising `TrialDataError` naming the trial."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            label = f"{fields.get('study_name')}#{fields.get('number')}"
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'trial'}: {err['msg']}"
                for err in exc.errors()
            )
            raise TrialDataError(f"trial data is invalid: {problems}", trial=label) from exc

    def to_json(self) -> str:
        """Canonical JSON including the content hash."""
        return _canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, text: str) -> TrialSnapshot:
        """Inverse of :meth:`to_json`; the stored hash must match the recomputed one."""
        data = json.loads(text)
        stored_hash = data.pop("content_hash", None)
        snapshot = cls.build(**data)
        if stored_hash is not None and stored_hash != snapshot.content_hash:
            raise TrialDataError(
                f"stored snapshot hash {stored_hash[:12]} does not match its content "
                f"({snapshot.content_hash[:12]}): the artifact was altered",
                trial=snapshot.label,
            )
        return snapshot
