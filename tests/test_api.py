"""The HTTP API against a real Redis and a real broker, with state a real worker produced.

Every response is compared with what Redis and the topics hold, read here
independently of the query module (the shared/state readers, the whole topic).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests

from rig.local_services import RedisServer, TansuBroker, free_port
from shared.contracts.segment_change import SegmentChange
from shared.kafka_clients import read_to_end
from shared.settings import Settings, as_environment
from shared.state.customer_record import CustomerRecord
from shared.state.customers import product_units
from shared.state.keys import Keys
from shared.state.layout import stream_clock
from shared.state.model_stats import AS_OF_FIELD
from shared.state.model_store import require_current
from shared.state.popularity import segment_products
from tests.api_rig import get, running_api
from tests.pipeline import records as stored_records
from tests.tools_helpers import alert, bootstrap_simulated, stream_simulated, swept_statistics, top_units
from worker.drift_service.store import MonitorStore


def topic_changes(settings: Settings) -> dict[str, SegmentChange]:
    """Each customer's change with the highest sequence on the topic."""
    last: dict[str, SegmentChange] = {}
    for record in read_to_end(settings.kafka, settings.topics.segment_changes):
        change = SegmentChange.model_validate_json(record.value)
        if change.customer_id not in last or change.sequence > last[change.customer_id].sequence:
            last[change.customer_id] = change
    return last


def live_model(client: redis.Redis, keys: Keys) -> dict:
    return json.loads(client.get(keys.model(int(client.get(keys.model_current)))))


def times(view: dict[str, Any], *names: str) -> dict[str, Any]:
    """``view`` with the event times ``names`` parsed (the API writes them ISO, without a zone)."""
    return view | {name: datetime.fromisoformat(view[name]) if view[name] else None for name in names}


def expected_customer(client: redis.Redis, keys: Keys, record: CustomerRecord, model: dict, top: int) -> dict:
    """The customer as Redis holds it, with the recommendation rule applied by hand."""
    segments = {s["id"]: s for s in model["segments"]}

    def label(value: int) -> dict | None:
        if value < 0:
            return None
        segment = segments[value]
        return {"id": segment["id"], "name": segment["name"], "description": segment["description"]}

    recommendations = []
    if record.published >= 0:
        had = product_units(client, keys, record.customer_id)
        ranked = top_units(segment_products(client, keys, record.published), top, exclude=had)
        recommendations = [{"stock_code": code, "units": units} for code, units in ranked]
    return {
        "customer_id": record.customer_id,
        "model_version": model["version"],
        "published": label(record.published),
        "assigned": label(record.segment),
        "features": record.features,
        "features_as_of": record.as_of,
        "sequence": record.seq,
        "published_at": record.published_at,
        "recommendations": recommendations,
    }


def test_every_endpoint_equals_what_redis_and_the_topics_hold(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=45)
    stream_simulated(settings, tmp_path)
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    opened = alert("a1", "invoice_behaviour")
    closed = alert("b1", "segment_structure").model_copy(update={"incident_id": "inc-b"})
    MonitorStore(redis_client, keys, keep=100).commit(-1, 0, {}, [opened, closed, closed.model_copy(
        update={"alert_id": "b2", "state": "closed", "value": 0.1}
    )])  # fmt: skip
    model = live_model(redis_client, keys)
    last = topic_changes(settings)
    records = stored_records(redis_client, keys, partitions)
    customers = sorted(records)
    changed = [c for c in customers if c in last][:15]
    unchanged = [c for c in customers if c not in last][:5]
    assert len(changed) == 15 and unchanged

    with running_api(settings) as url:
        for customer in changed + unchanged:
            body = get(url, f"/customers/{customer}?recommendations=5")
            change = body.pop("last_change")
            assert times({k: body[k] for k in body if k != "aggregates"}, "features_as_of", "published_at") == (
                expected_customer(redis_client, keys, records[customer], model, 5)
            )
            if customer in last:
                assert change["sequence"] == last[customer].sequence == body["sequence"]
                assert (change["reason"], change["current"]["id"]) == (last[customer].reason, last[customer].current.id)
                assert datetime.fromisoformat(change["event_time"]) == last[customer].event_time
            else:
                assert change is None
        assert any(get(url, f"/customers/{c}")["recommendations"] for c in changed)

        # Sizes are the live statistics: every partition's, as its last daily sweep counted them. A customer
        # counted there holds that segment until an event (or a later sweep) re-scores it after that midnight.
        segments = get(url, "/segments?products=3")
        snapshot = require_current(redis_client, keys)
        statistics = swept_statistics(redis_client, keys, snapshot, partitions)
        sizes = {s["id"]: s["size"] for s in segments["segments"]}
        assert segments["model_version"] == model["version"]
        assert sizes == {s.id: int(n) for s, n in zip(snapshot.segments, statistics.counts, strict=True)}
        swept = datetime.fromisoformat(redis_client.hget(keys.stats(0), AS_OF_FIELD))
        counted = [r for r in records.values() if r.aggregates.first_purchase and r.aggregates.first_purchase < swept]
        assert segments["customers"] == sum(sizes.values()) == len(counted)
        unchanged_since = Counter(r.segment for r in counted if r.as_of is not None and r.as_of < swept)
        rescored = sum(1 for r in counted if r.as_of is None or r.as_of >= swept)
        assert all(unchanged_since[s] <= sizes[s] <= unchanged_since[s] + rescored for s in sizes), sizes
        for view, stored in zip(segments["segments"], model["segments"], strict=True):
            assert (view["name"], view["description"], view["profile"]) == (
                stored["name"],
                stored["description"],
                stored["profile"],
            )
            top = top_units(segment_products(redis_client, keys, view["id"]), 3)
            assert [(p["stock_code"], p["units"]) for p in view["top_products"]] == top
        assert segments["feature_units"]["monetary"] == "GBP"

        models = get(url, "/models")
        assert [(m["version"], m["current"]) for m in models] == [(model["version"], True)]
        one = get(url, f"/models/{model['version']}")
        assert one == models[0]
        assert (one["k"], one["metrics"], one["lineage"]["source"]) == (model["k"], model["quality"], "bootstrap")
        assert [(s["id"], s["name"], s["size_at_fit"]) for s in one["segments"]] == [
            (s["id"], s["name"], s["count"]) for s in model["segments"]
        ]

        open_incidents = get(url, "/incidents")
        assert [i["incident_id"] for i in open_incidents] == list(redis_client.hkeys(keys.drift_incidents))
        every = {i["incident_id"]: i for i in get(url, "/incidents?state=all")}
        assert set(every) == {"inc-invoice_behaviour", "inc-b"}
        assert (every["inc-b"]["state"], every["inc-b"]["alerts"]) == ("closed", 2)
        assert [p["value"] for p in every["inc-b"]["history"]] == [0.31, 0.1]
        family = every["inc-invoice_behaviour"]["families"][0]
        assert (family["monitor"], family["value"], family["threshold"]) == ("invoice_behaviour", 0.31, 0.2)
        assert get(url, "/incidents/inc-b") == every["inc-b"]
        assert every["inc-invoice_behaviour"]["suggested_action"] == "check prices"

        progress = get(url, "/progress")
        stored = {p: int(redis_client.hget(keys.checkpoint(p), "offset")) for p in range(partitions)}
        assert progress["applied"] == sum(stored.values())
        assert {p["partition"]: p["applied_offset"] for p in progress["partitions"]} == stored
        assert progress["lag"] == 0
        assert datetime.fromisoformat(progress["event_time"]) == stream_clock(redis_client, keys)

        history = get(url, "/segments/history?weeks=52")
        published = Counter(r.published for r in records.values() if r.published >= 0)
        at_end = {int(s): sizes[-1] for s, sizes in history["sizes"].items() if sizes[-1]}
        assert at_end == dict(published)
        flows = Counter(
            (c["previous"]["id"] if c["previous"] else None, c["current"]["id"])
            for c in {
                (e.customer_id, e.sequence): e.model_dump(mode="json")
                for e in (
                    SegmentChange.model_validate_json(r.value)
                    for r in read_to_end(settings.kafka, settings.topics.segment_changes)
                )
            }.values()
        )
        assert {(f["source"], f["target"]): f["changes"] for f in history["flows"]} == dict(flows)
        assert get(url, "/healthz")["live"] is True


def test_errors_answer_one_shape_with_the_right_status(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bootstrap_simulated(settings, redis_client, tmp_path)
    with running_api(settings) as url:
        missing = get(url, "/customers/no-such-customer", status=404)
        assert missing["status"] == 404 and missing["error"] == "not_found"
        assert "check the id" in missing["message"] and "SEG_REDIS__KEY_PREFIX" in missing["message"]
        assert get(url, "/models/999", status=404)["error"] == "not_found"
        assert get(url, "/incidents/nothing", status=404)["error"] == "not_found"
        assert get(url, "/incidents?state=closed", status=422)["error"] == "invalid_request"
        assert get(url, "/models/0", status=422)["status"] == 422
        assert get(url, "/no/such/path", status=404)["error"] == "not_found"

    with RedisServer(appendonly=False) as server:
        down = settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": server.url})})
        with running_api(down, ready=False) as url:
            assert get(url, "/readyz", status=503)["detail"].startswith("no live model")
            assert get(url, "/segments", status=503)["message"].startswith("no live model")
            server.stop()
            body = get(url, "/customers/17850", status=503)
            assert body == {"status": 503, "error": "unavailable", "message": body["message"]}
            assert "SEG_REDIS__URL" in body["message"]
            health = get(url, "/readyz", status=503)
            assert (health["redis"], health["ready"]) == (False, False)


def test_auth_is_on_by_default_off_loopback_and_a_token_opens_it(settings: Settings, redis_client: redis.Redis) -> None:
    env = {"PATH": "/usr/bin:/bin", **as_environment(settings), "SEG_API_HOST": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "api"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "SEG_API_TOKEN" in done.stderr and "SEG_API_AUTH=off" in done.stderr

    with running_api(settings, ready=False, auth="on", token="s3cret-token") as url:
        refused = requests.get(f"{url}/segments", timeout=10)
        assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
        assert refused.json()["error"] == "unauthorized"
        wrong = requests.get(f"{url}/segments", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        allowed = requests.get(f"{url}/segments", headers={"Authorization": "Bearer s3cret-token"}, timeout=10)
        assert allowed.status_code == 503, "past auth: no model in this Redis prefix yet"
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200, "health needs no token"
        assert "bearer" in json.dumps(requests.get(f"{url}/openapi.json", timeout=10).json()["components"]).lower()


def test_the_change_reader_waits_for_a_broker_that_is_down_and_the_api_becomes_ready(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bootstrap_simulated(settings, redis_client, tmp_path)
    port = free_port()
    absent = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})}
    )
    with running_api(absent, ready=False) as url:
        deadline = time.monotonic() + 60
        while "retries after" not in (health := get(url, "/readyz", status=503))["detail"]:
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
        assert get(url, "/segments")["model_version"] == 1, "Redis reads do not wait for the broker"
        with TansuBroker(port=port):
            while requests.get(f"{url}/readyz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline + 60, get(url, "/readyz", status=503)
                time.sleep(0.5)
