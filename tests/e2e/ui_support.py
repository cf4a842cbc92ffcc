"""Fixtures for driving the Dagster UI in a real browser: Chromium, the webserver, a page.

Chromium comes from Debian's ``chromium`` package (never from Playwright's downloader). A
session fixture installs it with apt when it is missing; where that is impossible the UI
tests skip locally and fail under ``CI=true`` (`require_service`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.e2e.conftest import BIN, ROOT, Deployment, stop_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Screenshots of UI tests (git-ignored); the README's screenshots are copies of some.
ARTIFACTS = ROOT / "test-artifacts" / "ui"
#: Total time allowed to apt-get Chromium (it takes ~15 s from a Debian mirror).
APT_BUDGET_S = 180
#: The demo study: with ``min_trades: 100`` the first stops at gate 1 (59 trades), the others
#: pass every gate on the default market and are promoted.
DEMO_TRIALS = [
    {"lookback": 480, "vol_lookback": 720, "target_bar_vol": 0.003},
    {"lookback": 123, "vol_lookback": 168, "target_bar_vol": 0.003},
    {"lookback": 150, "vol_lookback": 168, "target_bar_vol": 0.003},
]


def _apt(*args: str, deadline: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    timeout = max(1.0, deadline - time.monotonic())
    return subprocess.run(["apt-get", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _install_chromium() -> str | None:
    """Install Debian's Chromium; None on success, else why it could not be installed."""
    if shutil.which("apt-get") is None:
        return "apt-get not found (not a Debian-like system)"
    if os.geteuid() != 0:
        return "not root: cannot apt-get install chromium (install the `chromium` package)"
    deadline = time.monotonic() + APT_BUDGET_S
    try:
        result = _apt("install", "-y", "--no-install-recommends", "chromium", deadline=deadline)
        if result.returncode != 0:  # e.g. empty package lists in a fresh container: update once
            _apt("update", deadline=deadline)
            result = _apt("install", "-y", "--no-install-recommends", "chromium", deadline=deadline)
    except subprocess.TimeoutExpired:
        return f"apt-get could not install chromium within {APT_BUDGET_S}s"
    if result.returncode != 0:
        return f"apt-get install chromium failed: {result.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path to Debian's Chromium, installed with apt when absent."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require_service("the `playwright` package is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        problem = _install_chromium()
        if problem or not CHROMIUM.exists():
            require_service(f"Chromium is not available at {CHROMIUM}: {problem or 'not installed by apt'}")
    return str(CHROMIUM)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Webserver:
    """A running `dagster-webserver` on loopback."""

    url: str
    deployment: Deployment
    proc: subprocess.Popen

    def graphql(self, query: str, variables: dict[str, Any] | None = None, *, timeout: float = 10.0) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def location_loaded(self) -> bool:
        """The `gauntlet` code location has loaded (and without an error)."""
        try:
            data = self.graphql(
                "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                "locationOrLoadError { __typename ... on PythonError { message } } } } } }",
                timeout=3,
            )
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        for entry in entries:
            error = entry.get("locationOrLoadError") or {}
            if error.get("__typename") == "PythonError":
                raise AssertionError(f"code location {entry['name']} failed to load: {error.get('message')}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def wait_until_ready(self, *, timeout: float = 90.0) -> None:
        """Return once the code location has loaded; fail with the webserver's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.deployment.log("webserver")
                raise AssertionError(f"dagster-webserver exited ({self.proc.returncode}):\n{log}")
            if self.location_loaded():
                return
            time.sleep(0.5)
        raise AssertionError(f"dagster-webserver not ready after {timeout:.0f}s:\n{self.deployment.log('webserver')}")


def start_webserver(deployment: Deployment) -> Webserver:
    """Start `dagster-webserver` on a free loopback port (see `Webserver.wait_until_ready`)."""
    port = free_port()
    proc = deployment.start(
        str(BIN / "dagster-webserver"),
        "-h", "127.0.0.1",
        "-p", str(port),
        "-w", str(ROOT / "workspace.yaml"),
        log_name="webserver",
    )  # fmt: skip
    return Webserver(url=f"http://127.0.0.1:{port}", deployment=deployment, proc=proc)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """Headless Chromium (Playwright gives it a fresh temporary user-data-dir)."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A tab in a fresh context (no UI state carried between tests), every wait bounded.

    Its last state is saved as test-artifacts/ui/last-<test>.png.
    """
    context = browser.new_context(viewport={"width": 1400, "height": 860})
    context.set_default_timeout(20_000)
    context.set_default_navigation_timeout(30_000)
    # Dagster's "join the community" dialog covers the first page on localhost.
    context.add_init_script("window.localStorage.setItem('communityNux', '1')")
    tab = context.new_page()
    try:
        yield tab
    finally:
        try:
            screenshot(tab, f"last-{request.node.name}")
        finally:
            context.close()


def make_deployment(home: Path) -> Deployment:
    """A Gauntlet home with its own Dagster instance; gates: the demo's with ``backtest: {min_trades: 100}``."""
    import dagster as dg

    from tests.dagster_helpers import write_demo_gate_policy

    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    policy = write_demo_gate_policy(home / "gate_policy.yaml", {"backtest": {"min_trades": 100}})
    env = {
        **os.environ,
        "GAUNTLET_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "GAUNTLET_GATE_POLICY": str(policy),
        "GAUNTLET_SENSOR_INTERVAL": "30",
        "PYTHONUNBUFFERED": "1",
    }
    # Create the SQLite storages once, before the webserver and this process both open them.
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    return Deployment(home=home, dagster_home=dagster_home, env=env)


def process_demo_study(deployment: Deployment) -> None:
    """Run the demo study through every gate in process, as the daemon would.

    Trial 0 stops at gate 1 (59 trades < ``min_trades`` 100); trials 1 and 2 are promoted.
    """
    import dagster as dg

    from resources.gate_policy import GatePolicyResource
    from tests.conftest import add_complete_trials
    from tests.dagster_helpers import Ticker, local_definitions

    add_complete_trials(deployment.optuna_url, "demo", [0.1, 0.2, 0.3], params=DEMO_TRIALS)
    policy = GatePolicyResource(path=deployment.env["GAUNTLET_GATE_POLICY"])
    with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
        defs = local_definitions(deployment.optuna_url, deployment.home, gate_policy=policy)
        ticker = Ticker(defs, instance)
        ticker.tick_until_idle()
        assert ticker.results and all(r.success for r in ticker.results)
        assert defs.resolve_job_def("reporting_job").execute_in_process(instance=instance).success
        promoted = instance.get_materialized_partitions(dg.AssetKey("deployment_record"))
        assert promoted == {"demo__t00000001", "demo__t00000002"}, promoted


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """`dagster-webserver` on a deployment whose demo study has been processed.

    The webserver boots while the study is processed in this process (the same instance).
    """
    home = tmp_path_factory.mktemp("ui") / "gauntlet"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home / "dagster"))  # dagster.yaml reads it
        deployment = make_deployment(home)
        server = start_webserver(deployment)
        try:
            process_demo_study(deployment)
            server.wait_until_ready()
            yield server
        finally:
            stop_process(server.proc)


def screenshot(page: Any, name: str, **kwargs: Any) -> Path:
    """Save a screenshot of ``page`` as test-artifacts/ui/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    return path
