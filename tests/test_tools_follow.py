"""``changes`` and ``alerts`` against the real broker: dedup, filters, JSON lines, from-now."""

from __future__ import annotations

import json
import threading
import time

from shared.settings import Settings
from tests.tools_helpers import alert, change, publish, run_tool

CHANGES = [
    ("101", change("101", 1, None, (0, "champions"))),
    ("102", change("102", 1, None, (2, "occasional"))),
    ("101", change("101", 2, (0, "champions"), (1, "loyal"))),
    ("101", change("101", 2, (0, "champions"), (1, "loyal"))),  # a repeat: shown once
    ("103", change("103", 1, None, (1, "loyal"))),
]


def test_changes_from_beginning_dedups_and_prints_a_table(settings: Settings) -> None:
    publish(settings, settings.topics.segment_changes, CHANGES)
    code, out = run_tool(settings, ["changes", "--from-beginning", "--timeout", "2"])
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["event", "time"]
    assert len(lines) == 1 + 4, out
    assert sum("1 loyal" in line and "0 champions" in line for line in lines) == 1


def test_changes_filters_and_json_lines(settings: Settings) -> None:
    publish(settings, settings.topics.segment_changes, CHANGES)
    _, out = run_tool(settings, ["changes", "--from-beginning", "--timeout", "2", "--json", "--customer", "101"])
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["customer_id"], e["sequence"]) for e in events] == [("101", 1), ("101", 2)]
    _, out = run_tool(settings, ["changes", "--from-beginning", "--timeout", "2", "--json", "--segment", "LOYAL"])
    assert sorted((e["customer_id"], e["sequence"]) for e in map(json.loads, out.splitlines())) == [
        ("101", 2),
        ("103", 1),
    ]
    _, out = run_tool(settings, ["changes", "--from-beginning", "--timeout", "2", "--json", "--segment", "0"])
    assert sorted(json.loads(line)["sequence"] for line in out.splitlines()) == [1, 2]  # into and out of 0
    _, out = run_tool(settings, ["changes", "--from-beginning", "--max", "2", "--json"])
    assert len(out.splitlines()) == 2


def test_changes_default_starts_now(settings: Settings) -> None:
    publish(settings, settings.topics.segment_changes, CHANGES[:2])
    result: list[str] = []
    follower = threading.Thread(
        target=lambda: result.append(run_tool(settings, ["changes", "--json", "--max", "2", "--timeout", "20"])[1])
    )
    follower.start()
    time.sleep(3)  # the follower has positioned at the end by now
    publish(settings, settings.topics.segment_changes, CHANGES[2:])
    follower.join(timeout=30)
    assert not follower.is_alive()
    events = [json.loads(line) for line in result[0].splitlines()]
    assert [(e["customer_id"], e["sequence"]) for e in events] == [("101", 2), ("103", 1)]


def test_alerts_dedup_by_alert_id_filter_and_table(settings: Settings) -> None:
    alerts = [
        ("orders", alert("a1", "orders")),
        ("orders", alert("a1", "orders")),  # a repeat
        ("orders", alert("a2", "orders", state="update")),
        ("segments", alert("b1", "segments")),
    ]
    publish(settings, settings.topics.drift_alerts, alerts)
    _, out = run_tool(settings, ["alerts", "--from-beginning", "--timeout", "2", "--json"])
    assert sorted(json.loads(line)["alert_id"] for line in out.splitlines()) == ["a1", "a2", "b1"]
    _, out = run_tool(settings, ["alerts", "--from-beginning", "--timeout", "2", "--monitor", "orders"])
    lines = out.splitlines()
    assert lines[0].startswith("window end") and len(lines) == 3, out
    assert all("orders" in line and "psi:avg_order_value" in line for line in lines[1:])
