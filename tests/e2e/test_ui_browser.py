"""The Dagster UI, in a real browser, over a small demo study processed through the gates.

Three trials on the default market, with the gate policy ``backtest: {min_trades: 100}`` (a
YAML file in ``GAUNTLET_GATE_POLICY`` for the webserver and the daemon, the same file for the
in-process processing): trial 0 trades 59 times and stops at gate 1; trials 1 and 2 pass
every gate and are promoted. Screenshots go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.e2e.conftest import stop_process
from tests.e2e.ui_support import (  # noqa: F401 - fixtures
    browser,
    chromium,
    page,
    screenshot,
    webserver,
)

pytestmark = pytest.mark.e2e

REJECTED, PROMOTED, PROMOTED_TOO = "demo__t00000000", "demo__t00000001", "demo__t00000002"
SHARED_ASSETS = ["market_data", "cge_scenarios"]
TRIAL_ASSETS = ["optuna_trial", "backtest_results", "cge_stress_report", "paper_trading_grade", "deployment_record"]
GATES = {"backtest_results": "backtest_gate", "cge_stress_report": "cge_gate", "paper_trading_grade": "paper_trading_gate"}
ALL_GROUPS = "global%40global%3Atrials%2Cglobal%40global%3Ashared%2Cglobal%40global%3Areporting"


def _expect():
    from playwright.sync_api import expect

    return expect


def test_asset_graph_shows_every_asset_with_its_gate_checks(page, webserver):
    expect = _expect()
    page.set_viewport_size({"width": 1920, "height": 1000})
    page.goto(f"{webserver.url}/asset-groups?expanded={ALL_GROUPS}")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    expect(page.get_by_text("study_funnel", exact=True).first).to_be_visible()
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
    for asset in SHARED_ASSETS + TRIAL_ASSETS + ["study_funnel"]:
        expect(page.get_by_text(asset, exact=True).first, asset).to_be_attached()
    for asset in SHARED_ASSETS + TRIAL_ASSETS + ["study_funnel"]:
        checks = page.locator(f'a[href="/assets/{asset}?view=checks"]')
        if asset in GATES:  # the node's "Asset checks" row links to its one gate
            expect(checks, asset).to_have_text(re.compile(r"\d+ / 1 "))
        else:
            expect(checks, asset).to_have_count(0)
    _center_graph(page)
    screenshot(page, "01-asset-graph")

    page.set_viewport_size({"width": 1400, "height": 860})
    for asset, gate in GATES.items():
        page.goto(f"{webserver.url}/assets/{asset}?view=checks")
        expect(page.get_by_text(gate, exact=True).first).to_be_visible()
        expect(page.get_by_text("blocking", exact=True)).to_be_visible()  # "This is a blocking asset check."


def _center_graph(page) -> None:
    """Drag the canvas so the graph's leftmost and rightmost assets are centred (for the screenshot)."""
    left = page.get_by_text("optuna_trial", exact=True).first.bounding_box()
    right = page.get_by_text("study_funnel", exact=True).first.bounding_box()
    size = page.viewport_size
    if not (left and right and size):
        return
    dx = size["width"] / 2 - (left["x"] + right["x"] + right["width"]) / 2
    start_x, start_y = size["width"] / 2, size["height"] - 30  # empty canvas below the groups
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + dx / 2, start_y, steps=5)
    page.mouse.move(start_x + dx, start_y, steps=5)
    page.mouse.up()
    page.wait_for_timeout(300)


def test_failed_gate_shows_its_reason_and_stops_the_trial(page, webserver):
    expect = _expect()
    page.goto(f"{webserver.url}/assets/backtest_results?view=checks")
    expect(page.get_by_text("backtest_gate", exact=True).first).to_be_visible()
    page.get_by_role("tab", name="Execution history").click()
    for key, verdict, reason in [(REJECTED, "Failed", "n_trades 59 < min 100"), (PROMOTED, "Passed", "all thresholds met")]:
        row = page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))
        expect(row).to_contain_text(verdict)
        expect(row).to_contain_text(reason)
    # The check's own tabs (Overview, Execution history, ..., Partitions) come after the asset's.
    page.get_by_role("tab", name="Partitions").last.click()
    page.get_by_text(REJECTED, exact=True).locator("visible=true").last.click()
    expect(page.get_by_text("Latest execution")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^n_trades 59 < min 100 \(short by 41\)$")).first).to_be_visible()
    screenshot(page, "02-failed-gate")

    # The trial went no further: no partition of the assets after backtest_results.
    for asset in ["cge_stress_report", "paper_trading_grade", "deployment_record"]:
        page.goto(f"{webserver.url}/assets/{asset}?view=partitions&partition={REJECTED}")
        expect(page.get_by_text("Missing (1)")).to_be_visible()
        expect(page.get_by_text(REJECTED, exact=True).locator("visible=true").last).to_be_visible()
        expect(page.get_by_text("View all historical events (0)")).to_be_visible()
        expect(page.get_by_text("No metadata entries")).to_be_visible()
        if asset == "cge_stress_report":
            screenshot(page, "03-rejected-trial-downstream-missing")
    # ... while the passing trial has them.
    page.goto(f"{webserver.url}/assets/cge_stress_report?view=partitions&partition={PROMOTED}")
    expect(page.get_by_text("View all historical events (1)")).to_be_visible()


def test_promoted_trial_shows_its_deployment_record(page, webserver):
    expect = _expect()
    page.goto(f"{webserver.url}/assets/deployment_record?view=partitions&partition={PROMOTED}")
    expect(page.get_by_text("Materialized", exact=True).first).to_be_visible()
    decision = page.get_by_role("row").filter(has=page.get_by_text("decision", exact=True))
    expect(decision).to_contain_text("promoted")
    expect(page.get_by_role("row").filter(has=page.get_by_text("trial", exact=True))).to_contain_text("demo#1")
    expect(page.get_by_text(re.compile(r"^every gate passed")).first).to_be_visible()
    gates = page.get_by_role("row").filter(has=page.get_by_text("gates", exact=True))
    for gate in GATES.values():
        expect(gates.get_by_role("row").filter(has_text=gate)).to_contain_text("pass")
    screenshot(page, "04-promoted-deployment-record")


def test_backfill_over_selected_trials_runs_to_completion(page, webserver):
    """Launch a backfill of every trial asset over two trials from the UI; the daemon runs it."""
    expect = _expect()
    page.goto(f"{webserver.url}/locations/gauntlet/asset-groups/trials")
    page.get_by_role("button", name="Materialize all…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text("Launch runs to materialize 5 assets")).to_be_visible()
    dialog.get_by_text("Select a partition or create one").click()
    for key in (PROMOTED, PROMOTED_TOO):
        page.get_by_text(key, exact=True).locator("visible=true").last.click()
    page.keyboard.press("Escape")  # close the partition list, keep the dialog
    expect(dialog.get_by_text("2 partitions")).to_be_visible()
    screenshot(page, "05-backfill-dialog")
    dialog.get_by_role("button", name="Launch backfill").click()
    link = page.locator("a[href^='/runs/b/']").first  # the "View" link of the toast
    expect(link).to_be_visible()
    backfill_path = link.get_attribute("href")

    # The backfill daemon polls every 30 s and evaluates once at start-up: starting the daemon
    # after the backfill exists makes the daemon pick it up at once.
    daemon = webserver.deployment.start_daemon()
    try:
        page.goto(f"{webserver.url}{backfill_path}")
        status = _wait_for_backfill(page, timeout=120)
        assert status == "Succeeded", webserver.deployment.log("daemon")
        for asset in TRIAL_ASSETS:
            row = page.locator("[class*='VirtualizedTable_row']").filter(has=page.locator(f'a[href="/assets/{asset}"]'))
            expect(row).to_contain_text(re.compile(r"100% completed\s*2\s*0\s*2\s*0"))  # targeted, in progress, ok, failed
        screenshot(page, "06-backfill-succeeded")
        page.get_by_role("tab", name="Runs").click()
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    finally:
        stop_process(daemon)


def _wait_for_backfill(page, *, timeout: float) -> str:
    """Reload the backfill page until its status is final; return the status shown."""
    expect = _expect()
    status = page.get_by_text(re.compile(r"^(Succeeded|Failed|Canceled|Canceling|Failing|In progress)$")).first
    deadline = time.monotonic() + timeout
    while True:
        expect(status).to_be_visible()
        shown = status.inner_text().strip()
        if shown not in {"In progress", "Canceling", "Failing"}:
            return shown
        if time.monotonic() > deadline:
            screenshot(page, "06-backfill-timeout")
            raise AssertionError(f"backfill still {shown!r} after {timeout:.0f}s")
        page.wait_for_timeout(2500)
        page.reload()
