"""The Dagster UI, in a real browser, over a demo study whose verdicts are recorded.

Six trials on the default market under the demo's gate thresholds with ``backtest:
{min_trades: 120}`` (`ui_support.DEMO_TRIALS`; a YAML file in ``GAUNTLET_GATE_POLICY`` for the
webserver and the daemon, the same file in process), taken through the gates by the real
`optuna_trial_sensor` in ONE batched run, as the daemon takes trials that arrive together.
Every gate passes some trials and fails others.

What the tests expect comes from the event log (`recorded_verdicts`: the check evaluations
the runs wrote), never from a list in this file: the check counters and the Failed filter,
each failed gate's reason and the materialization it judged, where a rejected trial stopped,
the deployment record, no "Unsynced" on freshly evaluated trials, and a rematerialization and
a backfill launched from the UI and run by a real daemon, with the runs' count tags.

Screenshots go to ``test-artifacts/ui/``; with ``GAUNTLET_RETAKE_TOUR=1`` the README tour's
are also copied over ``docs/screenshots/`` (`ui_support.TOUR`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pytest

from simulations.constants import DEFAULT_MARKET_SEED
from tests.e2e.conftest import stop_process, wait_for_progress
from tests.e2e.ui_support import (  # noqa: F401 - fixtures
    DEMO_TRIALS,
    GATES,
    Verdict,
    browser,
    chromium,
    expected_count_tags,
    materialize_market_data,
    page,
    recorded_verdicts,
    run_keys,
    screenshot,
    trial_keys,
    webserver,
)

pytestmark = pytest.mark.e2e

SHARED_ASSETS = ["market_data", "cge_scenarios"]
TRIAL_ASSETS = ["optuna_trial", "backtest_results", "cge_stress_report", "paper_trading_grade", "deployment_record"]
REPORTING_ASSETS = ["study_funnel", "gate_calibration"]
ALL_GROUPS = "global%40global%3Atrials%2Cglobal%40global%3Ashared%2Cglobal%40global%3Areporting"
#: The UI's labels of a partition check's statuses (the counters above its partition list).
CHECK_STATUS_LABELS = ["Execution Failed", "Failed", "In Progress", "Missing", "Skipped", "Passed"]
#: How the UI says a materialized asset is stale: the "Unsynced" tag (a partition, or the
#: lineage) and the catalog's cause labels.
STALE_TEXT = re.compile(r"^(Unsynced.*|Upstream data|Upstream code|Code version|Upstream dependencies)$")
RUN_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
BACKFILL_UNFINISHED = {"REQUESTED", "CANCELING", "FAILING"}
#: A backfill's status as its page shows it.
BACKFILL_STATUS_TEXT = {"COMPLETED_SUCCESS": "Succeeded", "COMPLETED_FAILED": "Failed", "COMPLETED": "Completed"}


def _expect():
    from playwright.sync_api import expect

    return expect


@dataclass(frozen=True)
class Study:
    """The demo study as the seeding run left it: its trials and their recorded verdicts."""

    keys: list[str]
    verdicts: dict[str, dict[str, Verdict]]  # gate -> trial -> verdict
    seed_run_id: str

    def failed(self, gate: str) -> list[str]:
        return sorted(k for k, v in self.verdicts[gate].items() if not v.passed)

    def passed(self, gate: str) -> list[str]:
        return sorted(k for k, v in self.verdicts[gate].items() if v.passed)

    def reached(self, asset: str) -> list[str]:
        """Trials with a partition of ``asset``: those that passed the gate before it."""
        before = TRIAL_ASSETS[TRIAL_ASSETS.index(asset) - 1]
        return self.keys if before not in GATES else self.passed(GATES[before])

    def stopped(self) -> dict[str, tuple[str, Verdict]]:
        """Each rejected trial -> (the gate that rejected it, its verdict)."""
        return {k: (gate, v) for gate, by_key in self.verdicts.items() for k, v in by_key.items() if not v.passed}


@pytest.fixture(scope="module")
def study(webserver) -> Study:
    with webserver.deployment.instance() as instance:
        keys = trial_keys(instance)
        verdicts = recorded_verdicts(instance)
    assert len(keys) == len(DEMO_TRIALS), keys
    assert {v.run_id for by_key in verdicts.values() for v in by_key.values()} == {webserver.seed_run_id}
    # The scenario the tests need: every gate passes some trials and fails others.
    for gate, by_key in verdicts.items():
        assert {v.passed for v in by_key.values()} == {True, False}, (gate, by_key)
    return Study(keys=keys, verdicts=verdicts, seed_run_id=webserver.seed_run_id)


def _listed(page, key: str):
    """``key`` in a partition list: a truncating box titled with it, outside the detail's heading."""
    return page.locator(f"xpath=//*[@title='{key}'][not(ancestor::*[contains(@class, 'Typography_size20')])]").locator(
        "visible=true"
    )


def _heading(page, key: str):
    """The heading of the partition detail pane, when it shows ``key``."""
    return page.locator(f"[class*='Typography_size20'] [title='{key}']")


def _table_row(page, has: str):
    """The row of one of the UI's tables (catalog, runs, backfill) that contains ``has`` (CSS)."""
    return page.locator("[class*='VirtualizedTable_row']").filter(has=page.locator(has))


def _trial_label(key: str) -> str:
    """``demo__t00000001`` -> ``demo#1``, as a trial's metadata names it."""
    study, number = key.rsplit("__t", 1)
    return f"{study}#{int(number)}"


def _visit(page, url: str, *, reload: bool = True) -> None:
    """Open ``url``: a page load, or with ``reload=False`` a move inside the app the tab already
    shows (the history change its own links make), which saves seconds of JavaScript start-up
    per page.

    Without a reload the app may answer from what it fetched before: only for data that has not
    changed since the tab last loaded a page.
    """
    origin = "{0.scheme}://{0.netloc}/".format(urlsplit(url))
    if reload or not page.url.startswith(origin):
        page.goto(url)
    else:
        page.evaluate(
            "url => { history.pushState({}, '', url); dispatchEvent(new PopStateEvent('popstate', {state: {}})); }",
            url,
        )


# ------------------------------------------------------------------------------------ lineage


def test_asset_graph_shows_every_asset_with_its_gate_checks(page, webserver, study):
    expect = _expect()
    _open_lineage(page, webserver, tidy=True)
    every_asset = SHARED_ASSETS + TRIAL_ASSETS + REPORTING_ASSETS
    for asset in every_asset:
        expect(page.get_by_text(asset, exact=True).first, asset).to_be_attached()
    for asset in every_asset:
        checks = page.locator(f'a[href="/assets/{asset}?view=checks"]')
        if asset in GATES:  # the node's "Asset checks" row links to its one gate
            expect(checks, asset).to_have_text(re.compile(r"\d+ / 1 Passed"))
        else:
            expect(checks, asset).to_have_count(0)
    _center_graph(page, every_asset)
    screenshot(page, "01-asset-graph")

    page.set_viewport_size({"width": 1400, "height": 860})
    for asset, gate in GATES.items():
        _visit(page, f"{webserver.url}/assets/{asset}?view=checks", reload=False)
        expect(page.get_by_text(gate, exact=True).first).to_be_visible()
        # Declared non-blocking: a failed blocking check would fail the whole batch's run; the
        # step itself stops a rejected trial (README, "Blocking, honestly").
        expect(page.get_by_text("This is a non-blocking asset check.")).to_be_visible()


def _open_lineage(page, webserver, *, tidy: bool = False) -> None:
    """The global lineage, every group expanded, zoomed in until nodes show their rows
    (``tidy``: without the navigation and the asset list, for a screenshot; once per tab)."""
    expect = _expect()
    page.set_viewport_size({"width": 1920, "height": 1000})
    _open_with_stale_statuses(page, f"{webserver.url}/asset-groups?expanded={ALL_GROUPS}")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expect(page.get_by_text("study_funnel", exact=True).first).to_be_visible()
    if tidy:
        page.get_by_role("button", name="Hide navigation").click()
        page.locator("button:has([aria-label='panel_show_right'])").click()  # the asset list
    # Zoomed out, nodes show only their names; zoom in until they show their rows (checks...).
    zoom_in = page.locator("button:has([aria-label='zoom_in'])")
    for _ in range(8):
        if page.get_by_text("Asset checks").count():
            break
        zoom_in.click()
        page.wait_for_timeout(400)
    expect(page.get_by_text("Asset checks").first).to_be_visible()


def _center_graph(page, names: list[str]) -> None:
    """Drag the canvas so the box around the named assets is centred (for the screenshot)."""
    boxes = [page.get_by_text(name, exact=True).first.bounding_box() for name in names]
    size = page.viewport_size
    if not (all(boxes) and size):
        return
    left = min(b["x"] for b in boxes)
    right = max(b["x"] + b["width"] for b in boxes)
    top = min(b["y"] for b in boxes)
    bottom = max(b["y"] + b["height"] for b in boxes)
    dx = size["width"] / 2 - (left + right) / 2
    dy = size["height"] / 2 - (top + bottom) / 2
    start_x, start_y = size["width"] / 2, size["height"] - 30  # empty canvas below the groups
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + dx / 2, start_y + dy / 2, steps=5)
    page.mouse.move(start_x + dx, start_y + dy, steps=5)
    page.mouse.up()
    page.wait_for_timeout(300)


# ------------------------------------------------------------------ check counters, Failed filter


def _open_check_partitions(page, webserver, asset: str, gate: str) -> None:
    expect = _expect()
    page.goto(f"{webserver.url}/assets/{asset}?view=checks")
    expect(page.get_by_text(gate, exact=True).first).to_be_visible()
    # The check's own tabs (Overview, Execution history, ..., Partitions) come after the asset's.
    page.get_by_role("tab", name="Partitions").last.click()


@pytest.mark.parametrize("asset", list(GATES))
def test_check_counters_and_failed_filter_show_the_recorded_verdicts(page, webserver, study, asset):
    """asset → Checks → its gate → Partitions: the counters count the recorded verdicts, the
    Failed filter lists exactly the failed trials, and each says why and what it judged."""
    expect = _expect()
    gate = GATES[asset]
    with webserver.deployment.instance() as instance:  # what the UI must count: the latest evaluations
        verdicts = recorded_verdicts(instance)[gate]
    keys = study.keys
    failed = sorted(k for k, v in verdicts.items() if not v.passed)
    passed = sorted(k for k, v in verdicts.items() if v.passed)
    assert failed and passed, (gate, verdicts)
    counters = {
        "Passed": len(passed),
        "Failed": len(failed),
        # Planned in the batched run but never evaluated: the trial stopped at an earlier gate.
        "Skipped": len(keys) - len(verdicts),
        "Missing": 0,
        "In Progress": 0,
        "Execution Failed": 0,
    }

    _open_check_partitions(page, webserver, asset, gate)
    expect(page.get_by_text(f"{len(keys)} Partitions Selected", exact=True)).to_be_visible()
    for label, count in counters.items():
        expect(page.get_by_text(f"{label} ({count})", exact=True), f"{gate}: {label}").to_be_visible()
    for key in keys:
        expect(_listed(page, key), key).to_have_count(1)

    # Unticking "Failed" hides exactly the failed trials ...
    page.get_by_text(f"Failed ({len(failed)})", exact=True).click()
    expect(page.get_by_text(f"{len(keys) - len(failed)} Partitions Selected", exact=True)).to_be_visible()
    for key in keys:
        expect(_listed(page, key), key).to_have_count(0 if key in failed else 1)
    # ... and "Failed" alone shows exactly them.
    page.get_by_text(f"Failed ({len(failed)})", exact=True).click()
    for label in CHECK_STATUS_LABELS:
        if label != "Failed":
            page.get_by_text(f"{label} ({counters[label]})", exact=True).click()
    expect(page).to_have_url(re.compile(r"[?&]status=FAILED(&|$)"))
    expect(page.get_by_text(f"{len(failed)} Partitions Selected", exact=True)).to_be_visible()
    for key in keys:
        expect(_listed(page, key), key).to_have_count(1 if key in failed else 0)

    # Each failed trial: Failed, the recorded reason, and the materialization it judged.
    for key in reversed(failed):  # the first one last: it stays on screen for the screenshot
        _listed(page, key).first.click()
        expect(_heading(page, key)).to_be_visible()
        expect(page.get_by_text("Latest execution")).to_be_visible()
        expect(page.get_by_text(verdicts[key].reason, exact=True).first).to_be_visible()
        target = page.get_by_text("Target materialization", exact=True).locator("..")
        expect(target.locator(f'a[href="/runs/{verdicts[key].run_id}"]')).to_be_visible()
    if asset == "backtest_results":
        screenshot(page, "02-failed-gate")
    else:
        screenshot(page, f"02-failed-{gate}")


# ---------------------------------------------------------------- a rejected trial goes no further


def test_failed_gate_says_why_and_later_assets_say_where_the_trial_stopped(page, webserver, study):
    expect = _expect()
    gate = "backtest_gate"
    page.goto(f"{webserver.url}/assets/backtest_results?view=checks")
    expect(page.get_by_text(gate, exact=True).first).to_be_visible()
    page.get_by_role("tab", name="Execution history").click()
    for key, verdict in study.verdicts[gate].items():
        row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True)).first
        expect(row).to_contain_text("Passed" if verdict.passed else "Failed")
        expect(row).to_contain_text(verdict.reason)

    # Every later asset of a rejected trial: no materialization, and an observation that says
    # which gate stopped it and why.
    stopped = study.stopped()
    assert {g for g, _ in stopped.values()} == set(GATES.values()), stopped
    for key, (gate, verdict) in stopped.items():
        asset = next(a for a, g in GATES.items() if g == gate)
        for later in TRIAL_ASSETS[TRIAL_ASSETS.index(asset) + 1 :]:
            _visit(page, f"{webserver.url}/assets/{later}?view=partitions&partition={key}", reload=False)
            expect(_heading(page, key)).to_be_visible()
            expect(page.get_by_text("No metadata entries")).to_be_visible()  # never materialized
            expect(page.get_by_text(f"Missing ({len(study.keys) - len(study.reached(later))})")).to_be_visible()
            page.get_by_role("button", name=re.compile(r"^View all historical events \(1\)$")).click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Observation")).to_be_visible()
            dialog.get_by_role("row").filter(has=page.get_by_text(key, exact=True)).first.locator("td").first.click()
            text = f"not evaluated: stopped at {gate} ({verdict.reason})"
            expect(dialog.get_by_text(text, exact=True), f"{later}[{key}]").to_be_visible()
            if later == "cge_stress_report" and key == study.failed("backtest_gate")[0]:
                screenshot(page, "03-rejected-trial-stopped-at-gate")
            page.keyboard.press("Escape")  # a move inside the app leaves an open dialog open
            expect(dialog).to_have_count(0)

    # ... while a trial that passed has them.
    key = study.passed("paper_trading_gate")[0]
    _visit(page, f"{webserver.url}/assets/cge_stress_report?view=partitions&partition={key}", reload=False)
    expect(_heading(page, key)).to_be_visible()  # not the previous trial's page, which has one event too
    expect(page.get_by_text("View all historical events (1)")).to_be_visible()
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()


# ------------------------------------------------------------------------------ a promoted trial


def test_promoted_trial_shows_its_deployment_record(page, webserver, study):
    expect = _expect()
    key = study.passed("paper_trading_gate")[0]
    page.goto(f"{webserver.url}/assets/deployment_record?view=partitions&partition={key}")
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    decision = page.get_by_role("row").filter(has=page.get_by_text("decision", exact=True))
    expect(decision).to_contain_text("promoted")
    expect(page.get_by_role("row").filter(has=page.get_by_text("trial", exact=True))).to_contain_text(
        _trial_label(key)
    )
    expect(page.get_by_text(re.compile(r"^every gate passed")).first).to_be_visible()
    gates = page.get_by_role("row").filter(has=page.get_by_text("gates", exact=True))
    for gate in GATES.values():
        expect(gates.get_by_role("row").filter(has_text=gate)).to_contain_text("pass")
    screenshot(page, "04-promoted-deployment-record")


# --------------------------------------------------------------------------------- staleness


def _open_partition(page, webserver, asset: str, key: str, *, reload: bool = True) -> None:
    """Open ``asset``'s page at partition ``key`` (see `_visit`) and wait until the UI has its staleness.

    The partition's staleness comes from a query of its own (`AssetPartitionStaleQuery`), after
    the page renders: "no Unsynced" means something only once its answer is in.
    """
    expect = _expect()

    def stale_query_for(response) -> bool:
        if "op=AssetPartitionStaleQuery" not in response.url:
            return False
        variables = (response.request.post_data_json or {}).get("variables") or {}
        return variables.get("partitionKey") == key and variables.get("assetKey") == {"path": [asset]}

    with page.expect_response(stale_query_for) as answer:
        _visit(page, f"{webserver.url}/assets/{asset}?view=partitions&partition={key}", reload=reload)
    assert answer.value.ok, f"{asset}[{key}]: stale query answered {answer.value.status}"
    expect(_heading(page, key)).to_be_visible()


def _open_with_stale_statuses(page, url: str) -> None:
    """Open a page that shows assets' staleness and wait for it (`AssetStaleStatusDataQuery`)."""
    with page.expect_response(lambda r: "op=AssetStaleStatusDataQuery" in r.url) as answer:
        page.goto(url)
    assert answer.value.ok


def _unsynced(page):
    return page.get_by_text(STALE_TEXT).locator("visible=true")


def test_freshly_evaluated_trials_are_not_unsynced(page, webserver, study):
    """No "Unsynced" on any materialized trial partition, the lineage or the catalog; and the
    same pages do show it once `market_data` changes under the trials (so its absence means
    something), until the original market is back."""
    expect = _expect()
    with webserver.deployment.instance() as instance:
        materialized = {
            asset: sorted(instance.get_materialized_partitions(dg.AssetKey(asset))) for asset in TRIAL_ASSETS
        }
    assert all(materialized.values()), materialized
    for asset, keys in materialized.items():
        assert keys == study.reached(asset), (asset, keys)
        for key in keys:
            _open_partition(page, webserver, asset, key, reload=False)
            expect(page.get_by_text("Materialized", exact=True).first, f"{asset}[{key}]").to_be_visible()
            expect(_unsynced(page), f"{asset}[{key}] is fresh").to_have_count(0)

    # Dagster 1.13 computes the staleness of a partitioned asset per partition only (a
    # partitioned asset's own staleStatus is always FRESH): the lineage and the catalog can show
    # "Unsynced" for the reporting assets, and the partition pages are what shows it for trials
    # and for the shared assets (partitioned by instrument).
    _open_lineage(page, webserver)
    expect(_unsynced(page), "lineage").to_have_count(0)
    _open_with_stale_statuses(page, f"{webserver.url}/assets")
    expect(page.get_by_text("backtest_results", exact=True).first).to_be_visible()
    expect(_unsynced(page), "catalog").to_have_count(0)

    # Positive control: a new market_data makes its readers stale, and the same pages say so.
    key = study.passed("paper_trading_gate")[0]
    deployment = webserver.deployment
    with deployment.instance() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("market_data"))
        original = event.asset_materialization.tags["dagster/data_version"]
    try:
        assert materialize_market_data(deployment, DEFAULT_MARKET_SEED + 1) != original
        _open_partition(page, webserver, "cge_scenarios", "default")
        expect(page.get_by_text(re.compile(r"^Unsynced")).first, "cge_scenarios after new market data").to_be_visible()
        _open_partition(page, webserver, "backtest_results", key)
        unsynced = page.get_by_text(re.compile(r"^Unsynced")).first
        expect(unsynced, "backtest_results after new market data").to_be_visible()
        screenshot(page, "05-unsynced-after-new-market-data")
    finally:
        # The original market again: its data version is the original one, so the trials are
        # in sync again and the other tests see the instance as the seeding run left it.
        assert materialize_market_data(deployment, DEFAULT_MARKET_SEED) == original
    _open_partition(page, webserver, "backtest_results", key)
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    expect(_unsynced(page)).to_have_count(0)
    _open_with_stale_statuses(page, f"{webserver.url}/assets")
    expect(page.get_by_text("backtest_results", exact=True).first).to_be_visible()
    expect(_unsynced(page), "catalog with the original market again").to_have_count(0)


# ------------------------------------------------------------- rematerialization and backfill


def _launched_from_toast(page, prefix: str) -> str:
    """The id in the "View" link of the toast a launch shows (``/runs/<id>`` or ``/runs/b/<id>``)."""
    expect = _expect()
    link = page.locator(f"a[href^='{prefix}']").filter(has_text="View").first
    expect(link).to_be_visible()
    return link.get_attribute("href").removeprefix(prefix).split("?")[0]


def _expect_run_tags_in_list(page, run_id: str, tags: dict[str, str]) -> Any:
    """The row of ``run_id`` in the Runs list on screen shows each of ``tags`` as `key: value`."""
    expect = _expect()
    row = _table_row(page, f'a[href^="/runs/{run_id}"]')
    expect(row).to_contain_text("Success")
    for tag, value in tags.items():
        expect(row.get_by_text(f"{tag}: {value}", exact=True), tag).to_be_visible()
    return row


def test_rematerializing_a_trial_from_the_ui_keeps_its_verdict_and_later_assets_in_sync(page, webserver, study):
    """backtest_results → the trial → Materialize: the daemon runs it; the result is the same
    (bit-identical inputs), so the check counters do not move and nothing after it is Unsynced."""
    expect = _expect()
    key = study.passed("paper_trading_gate")[0]
    page.goto(f"{webserver.url}/assets/backtest_results?view=partitions&partition={key}")
    expect(page.get_by_text("View all historical events (1)")).to_be_visible()
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize backtest_results")).to_be_visible()
    expect(dialog.get_by_text("1 partition", exact=True)).to_be_visible()
    dialog.get_by_role("button", name="Launch 1 run").click()
    run_id = _launched_from_toast(page, "/runs/")

    daemon = webserver.deployment.start_daemon()  # the queued run starts once a daemon runs
    try:
        status = wait_for_progress(
            lambda: webserver.run(run_id)["status"],
            lambda s: s in RUN_FINISHED,
            what=f"rematerialization run {run_id}",
            diagnose=lambda: webserver.deployment.log("daemon"),
        )
    finally:
        stop_process(daemon)
    assert status == "SUCCESS", webserver.deployment.log("daemon")

    with webserver.deployment.instance() as instance:
        mine = recorded_verdicts(instance, run_id=run_id)
        tags = webserver.run(run_id)["tags"]
        assert run_keys(instance, tags) == [key]
        expected_tags = expected_count_tags(instance, run_id, tags)
        verdicts = recorded_verdicts(instance)
    judged = {gate: set(by_key) for gate, by_key in mine.items()}
    assert judged == {"backtest_gate": {key}, "cge_gate": set(), "paper_trading_gate": set()}, judged
    assert mine["backtest_gate"][key].passed == study.verdicts["backtest_gate"][key].passed
    assert mine["backtest_gate"][key].reason == study.verdicts["backtest_gate"][key].reason

    # The rematerialized partition: a second event, from this run, in sync.
    _open_partition(page, webserver, "backtest_results", key)
    expect(page.get_by_text("View all historical events (2)")).to_be_visible()
    expect(page.locator(f'a[href^="/runs/{run_id}"]').first).to_be_visible()
    expect(_unsynced(page)).to_have_count(0)
    # Its later assets, materialized by the batched run from the same input version: in sync.
    for later in TRIAL_ASSETS[TRIAL_ASSETS.index("backtest_results") + 1 :]:
        _open_partition(page, webserver, later, key, reload=False)
        expect(page.get_by_text("View all historical events (1)"), later).to_be_visible()
        expect(_unsynced(page), f"{later}[{key}] after rematerializing backtest_results").to_have_count(0)
    # The gate's counters still count the recorded verdicts, the new evaluation included.
    failed = [k for k, v in verdicts["backtest_gate"].items() if not v.passed]
    assert verdicts["backtest_gate"][key].run_id == run_id
    _open_check_partitions(page, webserver, "backtest_results", "backtest_gate")
    expect(page.get_by_text(f"Failed ({len(failed)})", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Passed ({len(study.keys) - len(failed)})", exact=True)).to_be_visible()
    # The run carries its true counts, in the Runs list.
    page.goto(f"{webserver.url}/runs")
    _expect_run_tags_in_list(page, run_id, expected_tags)


def test_backfill_over_trials_from_the_ui_runs_and_its_runs_carry_their_counts(page, webserver, study):
    """A backfill of every trial asset over trials that pass and trials a gate rejects."""
    expect = _expect()
    rejected_early = study.failed("backtest_gate")[0]
    rejected_later = study.failed("cge_gate")[0]
    promoted = study.passed("paper_trading_gate")[:2]
    selection = sorted({rejected_early, rejected_later, *promoted})

    page.goto(f"{webserver.url}/locations/gauntlet/asset-groups/trials")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Launch runs to materialize {len(TRIAL_ASSETS)} assets")).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    for key in selection:
        page.get_by_text(key, exact=True).locator("visible=true").last.click()
    page.keyboard.press("Escape")  # close the partition list, keep the dialog
    expect(dialog.get_by_text(f"{len(selection)} partitions", exact=True)).to_be_visible()
    screenshot(page, "06-backfill-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    backfill_id = _launched_from_toast(page, "/runs/b/")

    # The backfill daemon polls every 30 s and evaluates once at start-up: starting the daemon
    # after the backfill exists makes it pick the backfill up at once.
    daemon = webserver.deployment.start_daemon()
    try:

        def progress() -> tuple:
            backfill = webserver.backfill(backfill_id)
            return backfill["status"], tuple(sorted((r["runId"], r["status"]) for r in backfill["runs"]))

        wait_for_progress(
            progress,
            lambda state: state[0] not in BACKFILL_UNFINISHED,
            what=f"backfill {backfill_id}",
            diagnose=lambda: webserver.deployment.log("daemon"),
        )
    finally:
        stop_process(daemon)
    backfill = webserver.backfill(backfill_id)
    assert backfill["runs"] and all(r["status"] == "SUCCESS" for r in backfill["runs"]), backfill

    # The runs, together, evaluated exactly the selection; each carries its true counts.
    expected_tags = {}
    covered = []
    with webserver.deployment.instance() as instance:
        for run in backfill["runs"]:
            covered += run_keys(instance, run["tags"])
            expected_tags[run["runId"]] = expected_count_tags(instance, run["runId"], run["tags"])
            shown = {k: v for k, v in run["tags"].items() if k.startswith("gauntlet/") and k != "gauntlet/study"}
            assert shown == expected_tags[run["runId"]], (run["runId"], shown)
        verdicts = recorded_verdicts(instance)
    assert sorted(covered) == selection
    # Bit-identical inputs: the backfill's verdicts are the seeding run's.
    for gate, by_key in study.verdicts.items():
        for key in selection:
            if key in by_key:
                again, first = verdicts[gate][key], by_key[key]
                assert (again.passed, again.reason) == (first.passed, first.reason), (gate, key)
    rejected = [k for k in selection if k in study.stopped()]
    assert sum(int(t["gauntlet/rejected"]) for t in expected_tags.values()) == len(rejected)

    # The backfill page. Its own status: Dagster 1.13 (since 1.13.22) marks every targeted
    # partition that no run materialized as failed, intentional skips included, so a backfill
    # whose trials include a rejection ends "Failed" although every run succeeded
    # (https://github.com/dagster-io/dagster/issues/34219). Asserted as it is: should Dagster
    # fix it, this expectation changes to "Succeeded".
    expected_status = "COMPLETED_FAILED" if rejected else "COMPLETED_SUCCESS"
    assert backfill["status"] == expected_status, backfill["status"]
    page.goto(f"{webserver.url}/runs/b/{backfill_id}")
    expect(page.get_by_text(BACKFILL_STATUS_TEXT[expected_status], exact=True).first).to_be_visible()
    for asset in TRIAL_ASSETS:
        reached = [k for k in selection if k in study.reached(asset)]
        failed = len(selection) - len(reached)  # #34219: the later assets of a rejected trial
        row = _table_row(page, f'a[href="/assets/{asset}"]')
        # targeted, in progress, succeeded, failed
        expect(row, asset).to_contain_text(
            re.compile(rf"100% completed\s*{len(selection)}\s*0\s*{len(reached)}\s*{failed}")
        )
    screenshot(page, "07-backfill-status")
    # Its Runs tab: every run succeeded and shows its counts as tags.
    page.get_by_role("tab", name="Runs").click()
    for run_id, tags in expected_tags.items():
        _expect_run_tags_in_list(page, run_id, tags)
    screenshot(page, "08-backfill-runs-with-counts")
