"""The one exception hierarchy for infrastructure errors (DESIGN.md, "Two kinds of failure").

Gate rejections are results, never exceptions. Everything that stops a trial from being
evaluated at all is a :class:`PipelineError`: its message names the trial, the stage and
the cause, so a failed run in the UI says what went wrong without opening a traceback.
Subclasses with ``transient = True`` are retried with backoff by the orchestration layer;
all others are deterministic and retrying them would only repeat the failure.
"""

from __future__ import annotations

from typing import ClassVar


class PipelineError(Exception):
    """An infrastructure error: the trial could not be evaluated.

    Parameters
    ----------
    cause
        What went wrong, phrased so a user knows what to fix.
    trial
        The trial's partition key or ``study#number``, when known.
    stage
        The pipeline stage (asset, sensor or resource) that failed.
    """

    transient: ClassVar[bool] = False
    default_stage: ClassVar[str] = "pipeline"

    def __init__(self, cause: str, *, trial: str | None = None, stage: str | None = None) -> None:
        self.cause = cause
        self.trial = trial
        self.stage = stage or self.default_stage
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"trial {self.trial}, " if self.trial else ""
        return f"[{where}stage {self.stage}] {self.cause}"

    def for_trial(self, trial: str, stage: str | None = None) -> PipelineError:
        """Return a copy of this error attributed to ``trial`` (and optionally ``stage``)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.trial = trial
        clone.stage = stage or self.stage
        Exception.__init__(clone, clone._render())
        return clone


class TransientError(PipelineError):
    """A failure that may succeed on retry: database locked, connection refused, timeout."""

    transient = True


class StorageUnavailableError(TransientError):
    """A storage (Optuna, registry, paper sessions) could not be reached."""

    default_stage = "storage"


class StorageCorruptError(PipelineError):
    """A storage was reached but its content is not what Gauntlet can read."""

    default_stage = "storage"


class StorageNotFoundError(PipelineError):
    """A storage, its schema or a study is not where the configuration says.

    Deterministic, and nothing is created in its place: a mistyped location must fail loudly,
    not become an empty storage that is read as "no new trials".
    """

    default_stage = "storage"


class TrialDataError(PipelineError):
    """A trial's own data is unusable: NaN objective, unserialisable or invalid params."""

    default_stage = "optuna_trial"


class TrainWindowOverlapError(TrialDataError):
    """A trial declares it was tuned on data that reaches into the backtest window (no longer out of sample)."""

    default_stage = "backtest_results"


class MarketDataError(PipelineError):
    """Market data is missing or violates a validation rule (named with file and row)."""

    default_stage = "market_data"


class EvaluationError(PipelineError):
    """A metric could not be computed meaningfully (empty window, NaN result)."""

    default_stage = "evaluation"


class LookAheadError(PipelineError):
    """A strategy's position on some bar depends on later bars: its backtest would be a fiction.

    Deterministic: the same strategy on the same data fails the same way; fix the strategy.
    """

    default_stage = "look_ahead_check"


class StressTestError(PipelineError):
    """A CGE scenario did not solve, or the stress test could not run."""

    default_stage = "cge_stress"


class PaperTradingError(PipelineError):
    """The paper venue failed: session state unreadable, benchmark unavailable."""

    default_stage = "paper_trading"


class ArtifactError(PipelineError):
    """A stored artifact is missing, truncated or fails its checksum."""

    default_stage = "artifact"


class ConfigurationError(PipelineError):
    """Gauntlet's configuration is invalid; the message names the key and the expectation."""

    default_stage = "configuration"


class RegistryError(PipelineError):
    """A deployment-registry operation cannot be done as asked (e.g. retiring a trial that is not live)."""

    default_stage = "deployment_registry"
