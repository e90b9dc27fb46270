"""The demo report: figures equal to the topics and Redis, and a page that headless Chromium renders.

The pipeline is real (simulated invoices bootstrapped, replayed through the
broker, applied by a worker, which also keeps the product counts); drift alerts
are published by the test, since the worker does not produce them yet.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis
from PIL import Image

from shared.contracts.drift_alert import Contributor, DriftAlert, EventWindow
from shared.settings import Settings, as_environment
from shared.state.keys import Keys
from shared.state.popularity import segment_products
from shared.topic_reader import ReadOptions, read
from tests.pipeline import records as stored_records
from tests.tools_helpers import START, alert, bootstrap_simulated, change, publish, stream_simulated, top_units
from worker.cli import main
from worker.queries import history
from worker.report.gather import gather
from worker.report.page import write

CHROMIUM_TIMEOUT_S = 120


def at(base: DriftAlert, alert_id: str, day: int, **changes: object) -> DriftAlert:
    """``base`` as another alert whose window ends ``day`` days after START."""
    window = EventWindow(start=START, end=START + timedelta(days=day), events=100, customers=50)
    return base.model_copy(update={"alert_id": alert_id, "window": window, **changes})


def test_incidents_fold_open_update_closed_per_incident_and_count_each_alert_once() -> None:
    price = alert("p", "avg_order_value")
    mix = alert("m", "segment_mix")
    alerts = [
        at(price, "p1", 10, state="open"),
        at(mix, "m1", 12, state="open", severity="info"),
        at(price, "p2", 15, state="update", severity="critical"),
        at(price, "p2", 15, state="update", severity="critical"),
        at(mix, "m2", 30, state="update", suggested_action="watch the segment mix"),
        at(price, "p3", 20, state="closed"),
    ]
    price_incident, mix_incident = history.incidents(reversed(alerts))
    assert (price_incident.monitor, price_incident.alerts, price_incident.severity) == (
        "avg_order_value",
        3,
        "critical",
    )
    assert price_incident.opened == START + timedelta(days=10)
    assert price_incident.closed == price_incident.end == START + timedelta(days=20)
    assert price_incident.statistic == "psi:avg_order_value"
    assert (mix_incident.monitor, mix_incident.alerts, mix_incident.severity) == ("segment_mix", 2, "warning")
    assert mix_incident.closed is None and mix_incident.end == START + timedelta(days=30)
    assert mix_incident.suggested_action == "watch the segment mix"


def test_an_incident_of_two_families_that_reopened_is_one_bar_open_until_its_last_alert_closes() -> None:
    invoice = Contributor(monitor="invoice_behaviour", method="psi", statistic="x", joined=START)
    activity = Contributor(monitor="customer_activity", method="z-score", statistic="y", joined=START)
    base = alert("i", "invoice_behaviour").model_copy(update={"incident_id": "v1-incident-1"})
    alerts = [
        at(base, "i1", 10, state="open", contributors=[invoice]),
        at(base, "i2", 12, state="update", monitor="customer_activity", contributors=[invoice, activity]),
        at(base, "i3", 20, state="closed", contributors=[invoice, activity]),
        at(base, "i4", 22, state="open", contributors=[invoice, activity]),
    ]
    (reopened,) = history.incidents(alerts)
    assert (reopened.monitor, reopened.opened, reopened.closed) == (
        "invoice_behaviour + customer_activity",
        START + timedelta(days=10),
        None,
    )
    (closed,) = history.incidents([*alerts, at(base, "i5", 30, state="closed")])
    assert closed.closed == START + timedelta(days=30)


def test_sizes_start_from_each_customers_segment_before_its_first_change_and_end_at_the_published_ones() -> None:
    first = change("a", 1, None, (0, "zero"))
    changes = history.distinct_changes(
        [change("a", 9, (0, "zero"), (1, "one")), first, change("c", 3, (2, "two"), (0, "zero")), first]
    )
    assert [(c.customer_id, c.sequence) for c in changes] == [("a", 1), ("c", 3), ("a", 9)]
    sizes = history.size_history(changes, {"a": 1, "b": 2, "c": 0, "d": None})
    assert sizes.times == [START + timedelta(days=day) for day in (1, 8, 15)]
    assert sizes.sizes == {0: [0, 2, 1], 1: [0, 0, 1], 2: [2, 1, 1]}
    assert sizes.at_end() == {0: 1, 1: 1, 2: 1}
    assert history.transitions(changes).counts == {(None, 0): 1, (2, 0): 1, (0, 1): 1}
    assert history.transitions(changes).sources == [None, 0, 2]


def chromium(*args: str, profile: Path) -> str:
    """Run headless Chromium; fail (never skip) when it is not installed."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run installs it)")
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)
    return done.stdout


def rendered_svgs(page: Path, profile: Path) -> list[str]:
    """The inline SVG elements of the DOM Chromium built from ``page``."""
    dom = chromium("--dump-dom", page.as_uri(), profile=profile)
    return re.findall(r"<svg\b.*?</svg>", dom, flags=re.DOTALL)


def coloured_share(png: Path) -> float:
    """Share of clearly coloured pixels: text and background are grey, only drawn charts add colour."""
    histogram = Image.open(png).convert("HSV").getchannel("S").histogram()
    return sum(histogram[81:]) / sum(histogram)


def distinct_changes_on_topic(settings: Settings) -> list[dict]:
    """The segment-change topic as raw JSON, each (customer, sequence) once."""
    records = read(settings.kafka, settings.topics.segment_changes, ReadOptions(from_beginning=True, to_end=True))
    events = (json.loads(record.value) for record in records)
    return list({(e["customer_id"], e["sequence"]): e for e in events}.values())


def test_report_of_a_streamed_pipeline_matches_topics_and_redis_and_renders_in_chromium(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted = bootstrap_simulated(settings, redis_client, tmp_path, stream_days=60)
    stream_simulated(settings, tmp_path)
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    price = alert("p", "avg_order_value")
    alerts = [at(price, "p1", 125), at(price, "p2", 130, state="closed"), at(alert("m", "segment_mix"), "m1", 140)]
    publish(settings, settings.topics.drift_alerts, [(a.monitor, a) for a in alerts])

    data = gather(settings)

    changes = distinct_changes_on_topic(settings)
    records = list(stored_records(redis_client, keys, partitions).values())
    assert len(changes) > 50 and data.changes == len(changes) == sum(r.seq for r in records)
    moves = Counter((e["previous"]["id"] if e["previous"] else None, e["current"]["id"]) for e in changes)
    assert data.transitions.counts == dict(moves)
    assert any(source is None for source, _ in moves) and any(source is not None for source, _ in moves)
    end_sizes = {segment: size for segment, size in data.sizes.at_end().items() if size}
    assert end_sizes == Counter(r.published for r in records if r.published >= 0)
    assert data.sizes.times[-1] > max(datetime.fromisoformat(e["event_time"]) for e in changes)
    assert [s.name for s in data.segments] == [s.name for s in fitted.snapshot.segments]
    assert [(i.monitor, i.alerts, i.closed is None) for i in data.incidents] == [
        ("avg_order_value", 2, False),
        ("segment_mix", 1, True),
    ]
    tops = {segment: top_units(segment_products(redis_client, keys, segment), 10) for segment in data.names}
    products = {segment: [(code, float(units)) for code, units in top] for segment, top in tops.items() if top}
    assert data.products == products and len(products) == len(end_sizes)

    for name, value in as_environment(settings).items():
        monkeypatch.setenv(name, value)
    page = tmp_path / "report.html"
    assert main(["report", "--out", str(page)]) == 0
    text = page.read_text()
    assert not re.search(r"<script|<link|(src|href)=\"(https?:)?//", text), "the page must need no network"
    svgs = rendered_svgs(page, tmp_path / "chromium")
    assert len(svgs) == 5, "profiles, sizes, transitions, incidents, products"
    assert all(svg.count("<path") >= 5 for svg in svgs)
    screenshot = tmp_path / "report.png"
    chromium(
        f"--screenshot={screenshot}",
        "--window-size=1200,4000",
        "--hide-scrollbars",
        page.as_uri(),
        profile=tmp_path / "chromium",
    )
    assert coloured_share(screenshot) > 0.05, "the charts' colours are missing from the screenshot"


def test_sections_without_data_say_so(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    fitted = bootstrap_simulated(settings, redis_client, tmp_path)
    keys = Keys(settings.redis.key_prefix)
    for partition in range(settings.topics.partitions):  # no product counts seeded
        for segment in fitted.snapshot.segments:
            redis_client.delete(*keys.products(partition, segment.id))
    data = gather(settings)
    assert (data.changes, data.incidents, data.products) == (0, [], {})
    page = write(data, tmp_path / "report.html")
    text = page.read_text()
    for message in ("No segment changes published yet", "No drift incidents", "No product counts in Redis yet"):
        assert message in text
    assert len(rendered_svgs(page, tmp_path / "chromium")) == 1, "only the profiles chart"
