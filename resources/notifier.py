"""Alerts to people: `NotifierResource` and its channels (JSON-lines log, webhook, desktop).

Every channel delivers an `Alert` at most once per dedup key and remembers what it delivered
in a JSON-lines *ledger* file, so a restarted daemon or a re-evaluated sensor tick does not
send the same alert twice. Sensors advance their cursors only after delivery, so together
they give at-least-once delivery that in practice is exactly once.

One ledger file can serve every channel: each line names its channel and key. The JSON-lines
log channel *is* its ledger (its lines hold the whole alert); the webhook and desktop channels
append a receipt line to the same file after a delivery. Appends hold an exclusive `flock`
(readers in other processes never see half a line), are flushed and fsynced before `notify`
returns. The keys already in a file are read once per process and cached; the cache reads only
the bytes appended since (by any process) and starts over when the file shrinks or is replaced.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import fcntl
import http.client
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal

import dagster as dg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

from resources.process_cache import ALERT_LEDGERS
from simulations.errors import ConfigurationError, TransientError
from simulations.vocabulary import GateAlerts

AlertKind = Literal["gate_failed", "gates_failed", "run_failed"]
Channel = Literal["log", "webhook", "desktop"]

# HTTP statuses that say "try again later"; every other 4xx means the request itself is wrong.
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})

logger = dg.get_dagster_logger("gauntlet.notifier")


class AlertDeliveryError(TransientError):
    """An alert could not be delivered now (endpoint down, timeout, disk error); retry later."""

    default_stage = "notifier"


class Alert(BaseModel):
    """Something a person must know about: a failed gate or a failed run.

    Attributes
    ----------
    key
        Dedup key: an alert with a key already delivered on a channel is not delivered again.
    kind
        ``gate_failed`` (a gate rejected a trial), ``gates_failed`` (a digest of rejections in
        one study) or ``run_failed`` (a run failed with an error).
    trial
        The trial's partition key, when the alert concerns one trial.
    study
        The study name, or its partition-key prefix when only the trial's key is known.
    stage
        The gate (check name) or the failed step.
    reason
        One line a person can act on: the failed threshold, or the error.
    run_id
        The Dagster run that produced the result or failed.
    at
        When the gate was evaluated or the run failed (UTC).
    details
        Everything else, as JSON (failed thresholds, trials of the run, error types).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1)
    kind: AlertKind
    trial: str | None
    study: str | None
    stage: str
    reason: str
    run_id: str | None
    at: AwareDatetime
    details: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def title(self) -> str:
        """A short headline: what failed, for which trial or run."""
        subject = self.trial or (f"run {self.run_id[:8]}" if self.run_id else self.study or "gauntlet")
        what = {"gate_failed": f"{self.stage} rejected", "gates_failed": "gates rejected trials"}.get(self.kind, "run failed")
        return f"Gauntlet: {what}: {subject}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Ledger:
    """The (channel, key) pairs recorded in one JSON-lines file, cached for this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: set[tuple[str, str]] = set()
        self._identity: tuple[int, int] | None = None
        self._offset = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_LedgerTransaction]:
        """Hold the file exclusively (threads and processes) with the cached keys up to date."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+b")
        except OSError as exc:
            raise AlertDeliveryError(f"alert ledger {self.path} cannot be opened: {exc.strerror or exc}") from exc
        with self._lock, handle:
            # The flock is released when the handle closes, also if the process dies.
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            self._refresh(handle)
            yield _LedgerTransaction(self, handle)

    def _refresh(self, handle: IO[bytes]) -> None:
        stat = os.fstat(handle.fileno())
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            # A new, rotated or truncated file: what was cached describes another file.
            self._keys.clear()
            self._offset = 0
            self._identity = identity
        if stat.st_size == self._offset:
            return
        handle.seek(self._offset)
        data = handle.read(stat.st_size - self._offset)
        complete = data.rfind(b"\n") + 1
        # Bytes after the last newline are a line torn by a writer that died mid-append (every
        # writer holds the lock for a whole line); `record` seals it and it is skipped below.
        for number, line in enumerate(data[:complete].splitlines(), start=1):
            self._read_line(line, number)
        self._offset += complete

    def _read_line(self, line: bytes, number: int) -> None:
        if not line.strip():
            return
        try:
            entry = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            entry = None
        if not (isinstance(entry, dict) and all(isinstance(entry.get(field), str) for field in ("channel", "key"))):
            # A torn write after a crash; its alert was never acknowledged, so it is sent again.
            logger.warning(
                f"alert ledger {self.path}: ignoring an unreadable line ({len(line)} bytes, "
                f"line {number} after byte {self._offset})"
            )
            return
        self._keys.add((entry["channel"], entry["key"]))


class _LedgerTransaction:
    """What a channel may do while it holds a ledger: look a key up, record a delivery."""

    def __init__(self, ledger: _Ledger, handle: IO[bytes]) -> None:
        self._ledger = ledger
        self._handle = handle

    def has(self, channel: Channel, key: str) -> bool:
        return (channel, key) in self._ledger._keys

    def record(self, channel: Channel, key: str, fields: Mapping[str, Any]) -> None:
        """Append one line and make it durable before returning."""
        ledger = self._ledger
        entry = {
            "channel": channel,
            "key": key,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(),
            **fields,
        }
        line = json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"
        # Written with os.write on the descriptor, never through the handle's buffer: a buffered
        # write that failed is tried again when the handle closes, and raises there, untyped.
        fd = self._handle.fileno()
        try:
            size = os.fstat(fd).st_size
        except OSError as exc:
            raise AlertDeliveryError(f"alert ledger {ledger.path} cannot be read: {exc.strerror or exc}") from exc
        data = (b"\n" if size > ledger._offset else b"") + line
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
            if size == 0:
                # The file was just created: its directory entry must survive a crash too.
                _fsync_dir(ledger.path.parent)
        except OSError as exc:
            # A full disk fails a write part of the way: cut what was written, so the ledger
            # never keeps a torn line and the alert, not recorded, is delivered again.
            try:
                os.ftruncate(fd, size)
                left = ""
            except OSError as cut:
                left = f"; a partial line is left (it is skipped when read): {cut.strerror or cut}"
            raise AlertDeliveryError(
                f"alert ledger {ledger.path} cannot be written: {exc.strerror or exc}{left}"
            ) from exc
        ledger._offset = size + len(data)
        ledger._keys.add((channel, key))


def _ledger(path: str) -> _Ledger:
    """The one cached ledger of ``path`` in this process (resources are rebuilt every tick)."""
    resolved = Path(path).expanduser().resolve()
    return ALERT_LEDGERS.get(resolved, lambda: _Ledger(resolved))


class NotifierResource(dg.ConfigurableResource, abc.ABC):
    """Where alerts go. Implementations deliver each alert key at most once."""

    gate_alerts: GateAlerts = Field(
        default="digest", description="Gate rejections: one digest per study per tick, one alert each, or none."
    )

    @abc.abstractmethod
    def notify(self, alert: Alert) -> bool:
        """Deliver ``alert``: True if delivered by this call, False if its key was already
        delivered (or an optional channel skipped it). Raise `AlertDeliveryError` when a
        delivery failed and must be retried."""


class JsonLinesNotifierResource(NotifierResource):
    """Alerts appended to a JSON-lines file, one line each: the default, durable channel."""

    path: str = Field(description="JSON-lines file of alerts; also the ledger of the other channels.")

    def notify(self, alert: Alert) -> bool:
        with _ledger(self.path).transaction() as ledger:
            if ledger.has("log", alert.key):
                return False
            ledger.record("log", alert.key, {"alert": alert.model_dump(mode="json")})
        return True


class WebhookNotifierResource(NotifierResource):
    """Alerts POSTed as JSON to a webhook (chat, incident tool); deliveries recorded in a ledger.

    Each request carries the alert key in an ``Idempotency-Key`` header, so a receiver can drop
    the duplicate that follows a crash between its answer and the ledger write.
    """

    url: str = Field(description="http(s) endpoint; may hold a token, so set it through dg.EnvVar.")
    ledger_path: str = Field(description="JSON-lines file recording delivered keys (may be the alert log).")
    timeout_seconds: float = Field(default=5.0, gt=0, le=30, description="Bound on connect and response.")

    def _endpoint(self) -> str:
        # Scheme, host and port only: the path or query of a webhook URL often is the secret.
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}"

    def notify(self, alert: Alert) -> bool:
        if urllib.parse.urlsplit(self.url).scheme not in {"http", "https"}:
            raise ConfigurationError(f"alert webhook must be an http(s) URL, got {self._endpoint()}")
        with _ledger(self.ledger_path).transaction() as ledger:
            if ledger.has("webhook", alert.key):
                return False
            status = self._post(alert)
            ledger.record("webhook", alert.key, {"endpoint": self._endpoint(), "status": status})
        return True

    def _post(self, alert: Alert) -> int:
        request = urllib.request.Request(
            self.url,
            data=alert.model_dump_json().encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": alert.key, "User-Agent": "gauntlet"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in _RETRYABLE_CLIENT_STATUSES:
                raise ConfigurationError(
                    f"alert webhook {self._endpoint()} rejected alert {alert.key}: HTTP {exc.code} {exc.reason}"
                ) from exc
            raise AlertDeliveryError(
                f"alert webhook {self._endpoint()} answered HTTP {exc.code} {exc.reason} to alert {alert.key}"
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            # OSError covers URLError, refused connections and timeouts; HTTPException a
            # connection that broke mid-response.
            cause = getattr(exc, "reason", None) or exc
            raise AlertDeliveryError(
                f"alert webhook {self._endpoint()} unreachable for alert {alert.key}: {cause}"
            ) from exc


class DesktopNotifierResource(NotifierResource):
    """A desktop pop-up through ``notify-send``, for someone working at the machine.

    Optional by nature: without the command, or without a desktop session for it to talk to,
    the alert is skipped with a logged reason, never failed — a headless daemon must not hold
    back the durable channels (their cursor waits for every channel that raises).
    """

    ledger_path: str = Field(description="JSON-lines file recording shown keys (may be the alert log).")
    command: str = Field(default="notify-send", description="Executable name or path.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=30)

    def notify(self, alert: Alert) -> bool:
        executable = shutil.which(self.command)
        if executable is None:
            logger.info(f"desktop alert {alert.key} skipped: {self.command!r} is not on PATH")
            return False
        with _ledger(self.ledger_path).transaction() as ledger:
            if ledger.has("desktop", alert.key):
                return False
            urgency = "critical" if alert.kind == "run_failed" else "normal"
            argv = [executable, "--app-name=Gauntlet", f"--urgency={urgency}", alert.title, alert.reason]
            try:
                completed = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_seconds)
            except (OSError, subprocess.TimeoutExpired) as exc:
                logger.warning(f"desktop alert {alert.key} skipped: {self.command} failed: {exc}")
                return False
            if completed.returncode != 0:
                logger.warning(
                    f"desktop alert {alert.key} skipped: {self.command} exited {completed.returncode}: "
                    f"{completed.stderr.strip()[:200]}"
                )
                return False
            ledger.record("desktop", alert.key, {})
        return True


class CompositeNotifierResource(NotifierResource):
    """Fans each alert out to the log and, when configured, a webhook and the desktop.

    The log goes first: it is local and durable, so an alert whose webhook delivery fails is
    on record at once; the raised error then fails the caller, and the retry finds the log
    entry (skipped) and delivers to the webhook only.
    """

    log: JsonLinesNotifierResource
    webhook: WebhookNotifierResource | None = None
    desktop: DesktopNotifierResource | None = None

    def notify(self, alert: Alert) -> bool:
        channels = [c for c in (self.log, self.webhook, self.desktop) if c is not None]
        delivered = [channel.notify(alert) for channel in channels]
        return any(delivered)
