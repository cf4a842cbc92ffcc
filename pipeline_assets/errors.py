"""How `PipelineError`s become Dagster failures: transient ones retry, the rest do not."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import dagster as dg

from simulations.errors import PipelineError, TransientError

#: Transient errors (database locked, connection refused) retry with exponential backoff and
#: jitter; deterministic ones raise `dg.Failure(allow_retries=False)` and skip this policy.
TRANSIENT_RETRY_POLICY = dg.RetryPolicy(
    max_retries=4, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def fail_for(errors: Sequence[PipelineError]) -> None:
    """Raise one failure describing every per-trial error of a batch (no-op when empty).

    A batch keeps evaluating its other trials when one fails; the run still fails at the end so
    the failure alert fires and the failed trials are visible. It is retried only when every
    error is transient: repeating a deterministic error would only repeat it.
    """
    if not errors:
        return
    transient = all(e.transient for e in errors)
    lines = [str(e) for e in errors]
    description = (
        f"{len(errors)} trial(s) failed:\n" + "\n".join(lines)
        if len(errors) > 1
        else lines[0]
    )
    metadata = {
        "failed_trials": dg.MetadataValue.json([e.trial for e in errors]),
        "error_types": dg.MetadataValue.json(sorted({type(e).__name__ for e in errors})),
        "transient": transient,
    }
    if transient:
        # Re-raised as a plain exception so TRANSIENT_RETRY_POLICY's backoff applies.
        raise TransientError(description, stage=errors[0].stage) from errors[0]
    raise dg.Failure(description=description, metadata=metadata, allow_retries=False) from errors[0]


@contextmanager
def no_retry_for_deterministic_errors() -> Iterator[None]:
    """Turn a deterministic `PipelineError` into a failure the `RetryPolicy` will not retry.

    Transient errors propagate unchanged, so the policy retries them with backoff.
    """
    try:
        yield
    except PipelineError as exc:
        if exc.transient:
            raise
        raise dg.Failure(
            description=str(exc),
            metadata={"error_type": type(exc).__name__, "trial": exc.trial or "—", "stage": exc.stage},
            allow_retries=False,
        ) from exc
