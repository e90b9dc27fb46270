"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) during a live replay.

It must show the segment sizes and open incidents Redis holds, update without a
reload when a worker publishes changes, show a customer's segment on search, and
request nothing outside the API.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from playwright.sync_api import ElementHandle, sync_playwright

from shared.settings import Settings, as_environment
from shared.state.keys import Keys
from shared.state.model_store import require_current
from tests.api_rig import running_api
from tests.pipeline import records
from tests.tools_helpers import CUTOFF, alert, bootstrap_simulated, replay_simulated, swept_statistics
from worker.drift_service.store import MonitorStore
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 30_000


def _attribute(element: ElementHandle, name: str) -> str:
    value = element.get_attribute(name)
    assert value is not None, name
    return value


def _text(element: ElementHandle, selector: str) -> str:
    found = element.query_selector(selector)
    assert found is not None, selector
    return found.inner_text()


def test_the_dashboard_shows_redis_updates_live_and_finds_a_customer(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=40)
    replay_simulated(settings, tmp_path, CUTOFF, CUTOFF + timedelta(days=15))
    options = WorkerSettings(group_id=f"g-{settings.redis.key_prefix}")
    Worker(settings, options).run(until_caught_up=True)
    keys = Keys(settings.redis.key_prefix)
    incident = alert("a1", "invoice_behaviour")
    MonitorStore(redis_client, keys, keep=100).commit(-1, 0, {}, [incident])

    with running_api(settings) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url + "/")
            page.wait_for_selector("#segments tbody tr", timeout=TIMEOUT_MS)
            page.wait_for_function("document.getElementById('status').textContent === 'live'", timeout=TIMEOUT_MS)

            # The live sizes: every partition's statistics, as the worker's last daily sweep counted them.
            snapshot = require_current(redis_client, keys)
            counts = swept_statistics(redis_client, keys, snapshot, settings.topics.partitions).counts
            shown = {
                int(_attribute(row, "data-segment")): int(_text(row, ".size").replace(",", ""))
                for row in page.query_selector_all("#segments tbody tr")
            }
            assert shown == {s.id: int(n) for s, n in zip(snapshot.segments, counts, strict=True)} and len(shown) == 4
            page.wait_for_selector("tr.incident.open", timeout=TIMEOUT_MS)
            open_rows = [row.get_attribute("data-incident") for row in page.query_selector_all("tr.incident.open")]
            assert open_rows == list(redis_client.hkeys(keys.drift_incidents)) == [incident.incident_id]
            assert "invoice_behaviour" in page.inner_text("#incidents")

            page.evaluate("window.notReloaded = true")
            replay_simulated(settings, tmp_path, CUTOFF + timedelta(days=15))
            command = [sys.executable, "-m", "worker", "run", "--until-caught-up", "--group", options.group_id]
            worker = subprocess.Popen(command, env=os.environ | as_environment(settings), stdout=subprocess.DEVNULL)
            try:
                page.wait_for_selector("#ticker li.change", timeout=TIMEOUT_MS)
                assert worker.wait(timeout=120) == 0
            finally:
                worker.kill()
            assert page.evaluate("window.notReloaded") is True, "the page updated without a reload"
            assert int(page.inner_text("#changes-seen").replace(",", "")) > 0

            stored = records(redis_client, keys, settings.topics.partitions)
            customer = next(c for c in sorted(stored) if stored[c].published >= 0)
            page.fill("#customer-id", customer)
            page.click("#search button")
            page.wait_for_selector(f"#customer-card[data-customer='{customer}']", timeout=TIMEOUT_MS)
            shown_segment = page.get_attribute("#customer-segment", "data-segment")
            assert shown_segment == str(stored[customer].published)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    outside = [address for address in requested if not address.startswith(url) and not address.startswith("data:")]
    assert requested and not outside, f"requests outside the API: {outside}"
