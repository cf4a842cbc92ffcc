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
from collections import Counter
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
#: Screenshot name -> the README tour's copy under docs/screenshots/ (see `screenshot`).
TOUR = {
    "01-asset-graph": "asset-graph.png",
    "02-failed-gate": "failed-gate.png",
    "04-promoted-deployment-record": "deployment-record.png",
}
#: Total time allowed to apt-get Chromium (it takes ~15 s from a Debian mirror).
APT_BUDGET_S = 180
#: The gate policy of the UI's deployment: the demo's thresholds with this on top.
GATE_OVERRIDES = {"backtest": {"min_trades": 120}}
#: The demo study, six momentum trials on the default market (backtest trades in brackets).
#: Under `GATE_OVERRIDES` every gate passes some and fails others: lookback 480 (59) and 360
#: (107) stop at gate 1 on trades, 6 (776) at the CGE gate, 160 is graded C on paper, 123 and
#: 60 pass every gate and are promoted. The tests never rely on this comment: they read the
#: verdicts the run recorded (`recorded_verdicts`) and check only that every gate has both.
DEMO_LOOKBACKS = [480, 123, 60, 6, 160, 360]
DEMO_TRIALS = [{"lookback": lb, "vol_lookback": 168, "target_bar_vol": 0.003} for lb in DEMO_LOOKBACKS]
#: Trial asset -> its gate check, in gauntlet order.
GATES = {
    "backtest_results": "backtest_gate",
    "cge_stress_report": "cge_gate",
    "paper_trading_grade": "paper_trading_gate",
}


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
    #: The batched run that took the demo study through the gates (set by the fixture).
    seed_run_id: str = ""

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

    def run(self, run_id: str) -> dict[str, Any]:
        """``{"status": ..., "tags": {key: value}}`` of one run, as the UI reads it."""
        data = self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status tags { key value } } } }",
            {"id": run_id},
        )["runOrError"]
        assert data["__typename"] == "Run", data
        return {"status": data["status"], "tags": {t["key"]: t["value"] for t in data["tags"]}}

    def backfill(self, backfill_id: str) -> dict[str, Any]:
        """``{"status": ..., "runs": [{"runId", "status", "tags"}]}`` of one backfill."""
        data = self.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename"
            " ... on PartitionBackfill { status runs(limit: 100) { runId status tags { key value } } } } }",
            {"id": backfill_id},
        )["partitionBackfillOrError"]
        assert data["__typename"] == "PartitionBackfill", data
        runs = [
            {"runId": r["runId"], "status": r["status"], "tags": {t["key"]: t["value"] for t in r["tags"]}}
            for r in data["runs"]
        ]
        return {"status": data["status"], "runs": runs}

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
    """A Gauntlet home with its own Dagster instance; gates: the demo's with `GATE_OVERRIDES`."""
    import dagster as dg

    from tests.dagster_helpers import write_demo_gate_policy

    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    policy = write_demo_gate_policy(home / "gate_policy.yaml", GATE_OVERRIDES)
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


def process_demo_study(deployment: Deployment) -> str:
    """Run the demo study through every gate in process, as the daemon would; the trial run's id.

    The real `optuna_trial_sensor` is ticked: its first request builds the shared assets, its
    second takes every trial in ONE batched run (several partitions in one run), as it does
    for trials that arrive together.
    """
    import dagster as dg

    from resources.gate_policy import GatePolicyResource
    from tests.conftest import add_complete_trials
    from tests.dagster_helpers import Ticker, local_definitions

    objectives = [0.1 * (i + 1) for i in range(len(DEMO_TRIALS))]
    add_complete_trials(deployment.optuna_url, "demo", objectives, params=DEMO_TRIALS)
    policy = GatePolicyResource(path=deployment.env["GAUNTLET_GATE_POLICY"])
    with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
        defs = local_definitions(deployment.optuna_url, deployment.home, gate_policy=policy)
        ticker = Ticker(defs, instance)
        ticker.tick_until_idle()
        assert ticker.results and all(r.success for r in ticker.results), "a gate rejection never fails a run"
        trial_runs = [r for r in ticker.results if r.job_def.name == "trial_job"]
        assert len(trial_runs) == 1, f"expected one batched trial run, got {len(trial_runs)}"
        (run,) = trial_runs
        tags = instance.get_run_by_id(run.run_id).tags
        assert tags.get("dagster/asset_partition_range_start") == demo_key(0), tags
        assert tags.get("dagster/asset_partition_range_end") == demo_key(len(DEMO_TRIALS) - 1), tags
        assert defs.resolve_job_def("reporting_job").execute_in_process(instance=instance).success
    return run.run_id


def demo_key(number: int) -> str:
    """The partition key of demo trial ``number``."""
    from pipeline_assets.trial_keys import trial_partition_key

    return trial_partition_key("demo", number)


@dataclass(frozen=True)
class Verdict:
    """One gate evaluation as the event log holds it."""

    passed: bool
    reason: str  # the evaluation's description: "n_trades 59 < min 120 (short by 61)"
    run_id: str


def recorded_verdicts(instance: Any, *, run_id: str | None = None) -> dict[str, dict[str, Verdict]]:
    """gate -> trial partition -> its latest evaluation, from the event log (of one run: ``run_id``).

    Read from the runs' ASSET_CHECK_EVALUATION events (oldest run first), never from what a
    test expects: this is what the UI's counters, dots and filters must count.
    """
    import dagster as dg

    run_ids = [run_id] if run_id else [r.dagster_run.run_id for r in reversed(instance.get_run_records())]
    verdicts: dict[str, dict[str, Verdict]] = {gate: {} for gate in GATES.values()}
    for rid in run_ids:
        events = instance.get_records_for_run(rid, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000)
        for event in events.records:
            evaluation = event.event_log_entry.dagster_event.event_specific_data
            if evaluation.check_name in verdicts and evaluation.partition:
                verdict = Verdict(passed=evaluation.passed, reason=evaluation.description or "", run_id=rid)
                verdicts[evaluation.check_name][evaluation.partition] = verdict
    return verdicts


def run_keys(instance: Any, tags: dict[str, str]) -> list[str]:
    """The trial partitions a run covers, from its tags (one partition, or a range)."""
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    keys = trial_keys(instance)
    start, end = tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]
    return keys[keys.index(start) : keys.index(end) + 1]


def expected_count_tags(instance: Any, run_id: str, tags: dict[str, str]) -> dict[str, str]:
    """The `gauntlet/*` count tags a finished trial run must carry, from its own evaluations.

    rejected: its trials a gate rejected in this run; passed: its trials judged in this run and
    rejected by none (no paper session is pending and no error occurs in these tests).
    """
    keys = run_keys(instance, tags)
    verdicts = recorded_verdicts(instance, run_id=run_id)
    judged = {k for by_key in verdicts.values() for k in by_key}
    rejected_by = Counter(gate for gate, by_key in verdicts.items() for v in by_key.values() if not v.passed)
    rejected = {k for by_key in verdicts.values() for k, v in by_key.items() if not v.passed}
    expected = {
        "gauntlet/evaluated": str(len(keys)),
        "gauntlet/passed": str(len(judged - rejected)),
        "gauntlet/rejected": str(len(rejected)),
        "gauntlet/pending": "0",
        "gauntlet/errors": "0",
    }
    if rejected_by:
        expected["gauntlet/rejected_by"] = ", ".join(f"{gate} {n}" for gate, n in sorted(rejected_by.items()))
    return expected


def trial_keys(instance: Any) -> list[str]:
    """Every partition of `trials`, in order."""
    from pipeline_assets.partitions import trials_partitions_def

    return list(instance.get_dynamic_partitions(trials_partitions_def.name))


def materialize_market_data(deployment: Deployment, seed: int) -> str:
    """Rematerialize `market_data` alone, in this process, from the synthetic market with ``seed``;
    its new data version. The default seed gives back the original data version and, as the code
    version is the market's configuration (as in the code location), the original code version."""
    import dagster as dg

    from resources.dagster_private import DATA_VERSION_TAG
    from pipeline_assets.shared_assets import MARKET_DATA
    from resources.market_data import SyntheticMarketDataResource
    from simulations.constants import DEFAULT_INSTRUMENT
    from tests.dagster_helpers import local_resources, shared_assets

    market = SyntheticMarketDataResource(seed=seed)
    resources = local_resources(deployment.optuna_url, deployment.home, market=market)
    with deployment.instance() as instance:
        market_data = shared_assets(market)[1]
        assert dg.materialize(
            [market_data], instance=instance, resources=resources, partition_key=DEFAULT_INSTRUMENT
        ).success
        event = instance.get_latest_materialization_event(MARKET_DATA)
        return event.asset_materialization.tags[DATA_VERSION_TAG]


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
            server.seed_run_id = process_demo_study(deployment)
            server.wait_until_ready()
            yield server
        finally:
            stop_process(server.proc)


def screenshot(page: Any, name: str, **kwargs: Any) -> Path:
    """Save a screenshot of ``page`` as test-artifacts/ui/<name>.png.

    A README tour screenshot (`TOUR`) is also copied over docs/screenshots/ when
    ``GAUNTLET_RETAKE_TOUR=1``: the tour is retaken on purpose, never by every test run.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), **kwargs)
    if name in TOUR and os.environ.get("GAUNTLET_RETAKE_TOUR") == "1":
        shutil.copyfile(path, ROOT / "docs" / "screenshots" / TOUR[name])
    return path
