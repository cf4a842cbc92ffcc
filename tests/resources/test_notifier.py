"""Notifier channels against real files, a real HTTP server on loopback and a real executable."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import logging
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.notifier import (
    Alert,
    AlertDeliveryError,
    CompositeNotifierResource,
    DesktopNotifierResource,
    JsonLinesNotifierResource,
    WebhookNotifierResource,
)
from resources.process_cache import ALERT_LEDGERS
from simulations.errors import ConfigurationError, TransientError


def _alert(key: str = "gate:backtest_gate:demo__t00000000:7") -> Alert:
    return Alert(
        key=key,
        kind="gate_failed",
        trial="demo__t00000000",
        study="demo",
        stage="backtest_gate",
        reason="n_trades 59 < min 100 (short by 41)",
        run_id="0123abcd",
        at=dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC),
        details={"failed_thresholds": [{"threshold": "n_trades", "value": 59, "margin": -41}]},
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _forget_ledgers() -> None:
    """What a process restart does to the per-process ledger cache."""
    ALERT_LEDGERS.clear()


@pytest.fixture(autouse=True)
def fresh_process_cache() -> Iterator[None]:
    _forget_ledgers()
    yield
    _forget_ledgers()


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((dict(self.headers), json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet: the test asserts on what was received, not on access logs."""


@pytest.fixture
def webhook_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []
    server.status = 204
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_json_lines_appends_each_key_once_also_after_a_restart(tmp_path):
    log = tmp_path / "alerts" / "alerts.jsonl"
    notifier = JsonLinesNotifierResource(path=str(log))
    assert notifier.notify(_alert("a")) is True
    assert notifier.notify(_alert("b")) is True
    assert notifier.notify(_alert("a")) is False
    _forget_ledgers()
    assert JsonLinesNotifierResource(path=str(log)).notify(_alert("b")) is False
    lines = _lines(log)
    assert [(line["channel"], line["key"]) for line in lines] == [("log", "a"), ("log", "b")]
    assert Alert.model_validate(lines[0]["alert"]) == _alert("a")


def test_json_lines_sees_keys_appended_by_another_process_and_seals_a_torn_line(tmp_path):
    log = tmp_path / "alerts.jsonl"
    notifier = JsonLinesNotifierResource(path=str(log))
    assert notifier.notify(_alert("a"))
    # Another process appends "b" after this one cached the file, then dies mid-line.
    with open(log, "a") as handle:
        handle.write(json.dumps({"channel": "log", "key": "b"}) + "\n" + '{"channel": "log", "ke')
    assert notifier.notify(_alert("b")) is False
    assert notifier.notify(_alert("c")) is True
    lines = log.read_text().splitlines()
    assert lines[-2] == '{"channel": "log", "ke'
    assert json.loads(lines[-1])["key"] == "c"
    _forget_ledgers()
    assert JsonLinesNotifierResource(path=str(log)).notify(_alert("c")) is False


def test_webhook_delivers_json_once_and_records_it_in_the_ledger(tmp_path, webhook_server):
    ledger = tmp_path / "alerts.jsonl"
    url = f"http://127.0.0.1:{webhook_server.server_address[1]}/hooks/secret-token"
    webhook = WebhookNotifierResource(url=url, ledger_path=str(ledger), timeout_seconds=5)
    assert webhook.notify(_alert()) is True
    assert webhook.notify(_alert()) is False
    _forget_ledgers()
    assert WebhookNotifierResource(url=url, ledger_path=str(ledger)).notify(_alert()) is False
    assert len(webhook_server.received) == 1
    headers, body = webhook_server.received[0]
    assert Alert.model_validate(body) == _alert()
    assert headers["Idempotency-Key"] == _alert().key
    (receipt,) = _lines(ledger)
    assert receipt["channel"] == "webhook" and receipt["status"] == 204
    assert "secret-token" not in ledger.read_text()


def test_webhook_down_or_failing_is_a_transient_error_and_nothing_is_recorded(tmp_path, webhook_server):
    ledger = tmp_path / "alerts.jsonl"
    down = WebhookNotifierResource(url=f"http://127.0.0.1:{_closed_port()}/hook", ledger_path=str(ledger))
    with pytest.raises(AlertDeliveryError, match="unreachable") as refused:
        down.notify(_alert())
    assert isinstance(refused.value, TransientError) and refused.value.transient
    webhook_server.status = 503
    failing = WebhookNotifierResource(
        url=f"http://127.0.0.1:{webhook_server.server_address[1]}/hook", ledger_path=str(ledger)
    )
    with pytest.raises(AlertDeliveryError, match="HTTP 503"):
        failing.notify(_alert())
    webhook_server.status = 404
    with pytest.raises(ConfigurationError, match="HTTP 404"):
        failing.notify(_alert())
    assert not ledger.exists() or ledger.read_text() == ""
    webhook_server.status = 200
    assert failing.notify(_alert()) is True


def test_desktop_notifier_absent_is_skipped_with_a_reason_not_failed(tmp_path, caplog):
    desktop = DesktopNotifierResource(ledger_path=str(tmp_path / "alerts.jsonl"), command="gauntlet-no-such-notifier")
    with caplog.at_level(logging.INFO):
        assert desktop.notify(_alert()) is False
    assert "not on PATH" in caplog.text
    assert not (tmp_path / "alerts.jsonl").exists()


def test_desktop_notifier_runs_the_command_once_per_key(tmp_path):
    calls = tmp_path / "calls.txt"
    script = tmp_path / "fake-notify-send"
    script.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {calls}\necho >> {calls}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    desktop = DesktopNotifierResource(ledger_path=str(tmp_path / "alerts.jsonl"), command=str(script))
    assert desktop.notify(_alert()) is True
    assert desktop.notify(_alert()) is False
    (call,) = calls.read_text().splitlines()
    assert "demo__t00000000" in call and "n_trades 59 < min 100" in call


def test_composite_logs_first_and_retries_only_the_channel_that_failed(tmp_path, webhook_server):
    log = tmp_path / "alerts.jsonl"
    webhook_server.status = 503
    notifier = CompositeNotifierResource(
        log=JsonLinesNotifierResource(path=str(log)),
        webhook=WebhookNotifierResource(
            url=f"http://127.0.0.1:{webhook_server.server_address[1]}/hook", ledger_path=str(log)
        ),
        desktop=DesktopNotifierResource(ledger_path=str(log), command="gauntlet-no-such-notifier"),
    )
    with pytest.raises(AlertDeliveryError):
        notifier.notify(_alert())
    assert [line["channel"] for line in _lines(log)] == ["log"]
    webhook_server.status = 200
    assert notifier.notify(_alert()) is True
    assert notifier.notify(_alert()) is False
    assert [line["channel"] for line in _lines(log)] == ["log", "webhook"]
    assert len(webhook_server.received) == 2  # the 503, then the 200; the third call never posted
