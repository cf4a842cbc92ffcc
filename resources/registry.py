"""`DeploymentRegistryResource`: where deployment decisions are recorded and the live set is kept.

The tables, their invariants, the write lock and idempotency are `resources.registry_store`'s,
which implements the registry in SQL without Dagster; the resource here runs it in Dagster.
"""

from __future__ import annotations

import abc

import dagster as dg
from pydantic import Field

from resources.registry_store import ControlEvent, ControlState, DecisionRecord, SqlRegistry
from simulations.constants import DEFAULT_LIVE_CAPACITY
from simulations.deployment import Candidate, DeploymentSettings, LiveEntry


class DeploymentRegistryResource(dg.ConfigurableResource, abc.ABC):
    """Where deployment decisions are recorded and the live set is kept (one source of truth)."""

    @abc.abstractmethod
    def decide_and_record(
        self, *, candidate: Candidate, settings: DeploymentSettings, decided_by: str
    ) -> DecisionRecord:
        """Decide about ``candidate`` against the current live set and stop flag, and record it.

        Parameters
        ----------
        candidate
            The trial with its three gate verdicts.
        settings
            Deployment settings; ``settings.live_capacity`` must equal the registry's.
        decided_by
            ``"pipeline"``, ``"cli"`` or ``"user:<name>"``.

        Returns
        -------
        DecisionRecord
            The new record, or the existing one when these inputs were already decided in
            this context (see the module docstring).
        """

    @abc.abstractmethod
    def live(self) -> list[LiveEntry]:
        """The live set, oldest first."""

    @abc.abstractmethod
    def decisions(
        self, *, study: str | None = None, partition_key: str | None = None, limit: int | None = None
    ) -> list[DecisionRecord]:
        """Decision records, newest first.

        Parameters
        ----------
        study, partition_key
            Only records of this study / this trial.
        limit
            At most this many (a positive integer); ``None``: all.

        Raises
        ------
        RegistryError
            If ``limit`` is not a positive integer.
        """

    @abc.abstractmethod
    def set_emergency_stop(self, *, stopped: bool, by: str, reason: str) -> ControlState:
        """Set (``stopped=True``) or clear the emergency stop; every call is logged.

        Parameters
        ----------
        stopped
            ``True`` holds every promotion from the next decision on, including decisions
            already waiting for the registry lock; ``False`` lets them through again.
        by
            ``"pipeline"``, ``"cli"`` or ``"user:<name>"``.
        reason
            One line, kept in the controls log.

        Returns
        -------
        ControlState
            The state now in force.
        """

    @abc.abstractmethod
    def emergency_stop(self) -> ControlState:
        """The emergency stop's current state."""

    @abc.abstractmethod
    def control_history(self, *, limit: int | None = None) -> list[ControlEvent]:
        """Stop and capacity changes, newest first."""

    @abc.abstractmethod
    def retire(self, *, partition_key: str, by: str, reason: str) -> DecisionRecord:
        """Take a live trial down, freeing its slot; recorded as ``retired``.

        Parameters
        ----------
        partition_key
            The live trial.
        by, reason
            Who and why (see :meth:`set_emergency_stop`).

        Raises
        ------
        RegistryError
            If the trial is not live.
        """

    @abc.abstractmethod
    def rollback(self, *, by: str, reason: str) -> DecisionRecord:
        """Undo the most recent promotion still live; recorded as ``rolled_back``.

        The promoted trial is taken down and the deployment it replaced, if any, is put back
        in its slot, unless the emergency stop is set (putting a trial live is what the stop
        forbids) or that trial is live again already; the reason says which. Rolling back a
        refresh puts the trial's previous evaluation back.

        Parameters
        ----------
        by, reason
            Who and why (see :meth:`set_emergency_stop`).

        Raises
        ------
        RegistryError
            If no promotion is live.
        """

    @abc.abstractmethod
    def set_live_capacity(self, *, capacity: int, by: str, reason: str) -> int:
        """Change the number of live slots (logged); returns the new capacity.

        Parameters
        ----------
        capacity
            Slots wanted (>= 1). Configure the same ``live_capacity`` in the resource and
            the deployment settings afterwards: decisions are refused while they disagree.
        by, reason
            Who and why (see :meth:`set_emergency_stop`).

        Raises
        ------
        RegistryError
            When shrinking below the number of live trials (retire some first).
        """

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise a typed error unless the registry is reachable, readable and configured consistently."""


class SqlDeploymentRegistryResource(SqlRegistry, DeploymentRegistryResource):
    """The registry in SQLite (default) or PostgreSQL; tables are created on first use.

    ``database_url`` is an SQLAlchemy URL: ``sqlite:////abs/path/gauntlet.db`` or
    ``postgresql+psycopg2://user:pass@host/db``; pass it as ``dg.EnvVar(...)`` when it carries
    a password. ``live_capacity`` sizes a new registry; an existing one keeps its slot count
    until :meth:`set_live_capacity` changes it, and decisions are refused while this setting
    or the deployment settings disagree with it.
    """

    database_url: str = Field(description="SQLAlchemy URL of the registry database (SQLite or PostgreSQL).")
    live_capacity: int = Field(
        default=DEFAULT_LIVE_CAPACITY, ge=1, description="Live slots of a new registry; must match an existing one."
    )
