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

#: Deepest nesting of one param or user attribute (a scalar is 0, ``{"a": 1}`` is 1). Well
#: inside pydantic's serialisation limit (255) and Python's recursion limit, which a deeper
#: attribute would hit as an untyped error wherever the snapshot is hashed or stored.
MAX_ATTRIBUTE_DEPTH = 32
#: Largest param or user attribute, as canonical JSON. The snapshot is stored as an artifact
#: and summarised in the instance's metadata: one 20 MB attribute cost about 60 MB there.
MAX_ATTRIBUTE_BYTES = 64 * 1024


class TrialState(StrEnum):
    """Lifecycle state of a trial, mirroring Optuna's without depending on it."""

    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAIL = "FAIL"
    WAITING = "WAITING"


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` levels; iterative, so any depth is safe to ask."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, (list, tuple)) else ()
        for child in children:
            if depth + 1 > limit:
                return True
            stack.append((child, depth + 1))
    return False


def _check_json(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serialisable with finite numbers: {exc}") from exc


def _check_bounded(kind: str, values: dict[str, Any]) -> None:
    # Depth first: serialising a deeper value is what would fail (or exhaust the stack).
    for key, value in values.items():
        if _deeper_than(value, MAX_ATTRIBUTE_DEPTH):
            raise ValueError(f"{kind} {key!r} is nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
        size = len(json.dumps(value, separators=(",", ":"), default=str).encode())
        if size > MAX_ATTRIBUTE_BYTES:
            raise ValueError(f"{kind} {key!r} takes {size} bytes as JSON, more than {MAX_ATTRIBUTE_BYTES}")


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
        _check_bounded("param", params)
        _check_json("params", params)
        return params

    @field_validator("user_attrs")
    @classmethod
    def _json_user_attrs(cls, user_attrs: dict[str, Any]) -> dict[str, Any]:
        _check_bounded("attribute", user_attrs)
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
