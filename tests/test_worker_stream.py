"""The streaming worker against a real broker, a real Redis and the real data.

Bootstrap up to the cutoff, replay the rest, and the state in Redis must equal
a pandas computation over the whole file, also when workers are killed: the
customers' aggregates and features, the guest statistics, and the product
popularity per published segment (and the recommendations read from it).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from producer.replay import ReplayOptions, replay
from shared.features.aggregates import CustomerAggregates, GuestStats
from shared.features.vector import compute_features
from shared.kafka_clients import read_to_end
from shared.settings import Settings, as_environment
from shared.state.keys import Keys
from shared.state.recommendations import Recommendation, recommend
from worker.bootstrap.batch_aggregates import batch_aggregates, guest_stats
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

CUTOFF = datetime(2011, 6, 1)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Truth:
    """The batch answer over the whole file: what the stream must arrive at."""

    aggregates: dict[str, CustomerAggregates]
    guests: GuestStats
    product_lines: pd.DataFrame  # customer_id, stock_code, quantity of every cleaned product line


@pytest.fixture(scope="module")
def truth(dataset: Path) -> Truth:
    cleaned = clean(load_history(dataset))
    lines = cleaned.customers[cleaned.customers["kind"] != "non_product"]
    return Truth(
        batch_aggregates(cleaned.customers),
        guest_stats(cleaned.guests),
        lines[["customer_id", "stock_code", "quantity"]].reset_index(drop=True),
    )


def _prepare(settings: Settings, client: redis.Redis, dataset: Path, tmp_path: Path) -> None:
    options = BootstrapSettings(k=6, model_file=tmp_path / "model.json")
    run_bootstrap(dataset, CUTOFF, client, Keys(settings.redis.key_prefix), options)
    replay(dataset, settings, ReplayOptions(start=CUTOFF, checkpoint=tmp_path / "replay.json"))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _assert_matches_batch(client: redis.Redis, keys: Keys, truth: Truth) -> dict[str, dict[str, str]]:
    aggregates, guests = truth.aggregates, truth.guests
    assert set(client.smembers(keys.customers)) == set(aggregates)
    pipe = client.pipeline(transaction=False)
    ids = sorted(aggregates)
    for cid in ids:
        pipe.hgetall(keys.customer(cid))
    records = dict(zip(ids, pipe.execute(), strict=True))
    for cid in ids:
        stored = CustomerAggregates.from_json(records[cid]["agg"]).to_dict()
        expected = aggregates[cid].to_dict()
        assert stored.keys() == expected.keys()
        for name, value in expected.items():
            if isinstance(value, float):
                assert _close(stored[name], value), (cid, name, stored[name], value)
            elif name == "month_spend":
                assert stored[name].keys() == value.keys(), cid
                assert all(_close(stored[name][m], v) for m, v in value.items()), cid
            else:
                assert stored[name] == value, (cid, name)
        as_of = records[cid]["as_of"]
        if records[cid].get("features"):
            features = json.loads(records[cid]["features"])
            batch = compute_features(aggregates[cid], datetime.fromisoformat(as_of))
            assert batch is not None
            assert all(_close(features[name], batch[name]) for name in batch), cid
        else:
            assert compute_features(aggregates[cid], datetime.fromisoformat(as_of)) is None, cid
    stored_guests = client.hgetall(keys.guests)
    assert int(stored_guests["lines"]) == guests.lines
    assert _close(float(stored_guests["amount"]), guests.amount)
    assert client.scard(keys.guest_invoices) == len(guests.invoices)
    products = _segment_products(truth.product_lines, _published_segments(records))
    assert _stored_segment_products(client, keys) == products
    return records


def _published_segments(records: dict[str, dict[str, str]]) -> dict[str, int]:
    return {cid: int(record["published"]) for cid, record in records.items() if record["published"]}


def _segment_products(lines: pd.DataFrame, published: dict[str, int]) -> dict[int, dict[str, int]]:
    """pandas: net units per stock code of the customers of each published segment, zeros left out."""
    segment = lines["customer_id"].map(published)
    units = lines[segment.notna()].groupby([segment.dropna().astype(int), "stock_code"])["quantity"].sum()
    expected: dict[int, dict[str, int]] = {}
    for (seg, code), n in units[units != 0].items():
        expected.setdefault(seg, {})[code] = int(n)
    return expected


def _stored_segment_products(client: redis.Redis, keys: Keys) -> dict[int, dict[str, int]]:
    stored: dict[int, dict[str, int]] = {}
    for key in client.scan_iter(match=keys.segment_products_pattern):
        members = client.zrange(key, 0, -1, withscores=True)
        assert all(score == int(score) for _, score in members), key
        stored[int(key.removeprefix(keys.prefix).split(":")[1])] = {code: int(score) for code, score in members}
    return stored


def _expected_recommendations(segment: dict[str, int], had: set[str], n: int) -> list[Recommendation]:
    """The segment's products with positive net units that the customer never had, most units first
    (ties: stock code descending, as Redis orders them)."""
    ranked = sorted(((units, code) for code, units in segment.items() if units > 0 and code not in had), reverse=True)
    return [Recommendation(code, units) for units, code in ranked[:n]]


def _changes_by_customer(settings: Settings) -> dict[str, list[dict]]:
    """The segment-change topic per customer, in sequence order, repeats dropped."""
    events: dict[str, dict[int, dict]] = {}
    for record in read_to_end(settings.kafka, settings.topics.segment_changes):
        event = json.loads(record.value)
        events.setdefault(event["customer_id"], {})[event["sequence"]] = event
    return {cid: [by_sequence[s] for s in sorted(by_sequence)] for cid, by_sequence in events.items()}


def test_stream_equals_batch_and_published_segments_match(
    settings: Settings, redis_client: redis.Redis, dataset: Path, tmp_path: Path, truth: Truth
) -> None:
    keys = Keys(settings.redis.key_prefix)
    _prepare(settings, redis_client, dataset, tmp_path)
    worker = Worker(settings, WorkerSettings(group_id=f"g-{settings.redis.key_prefix}"))
    worker.run(until_caught_up=True)
    records = _assert_matches_batch(redis_client, keys, truth)
    changes = _changes_by_customer(settings)
    published = {cid: events[-1] for cid, events in changes.items()}
    assert len(published) > 1000
    for cid, event in published.items():
        assert str(event["current"]["id"]) == records[cid]["published"], cid
        assert int(records[cid]["seq"]) == event["sequence"], cid
        assert records[cid]["published_at"] == event["event_time"], cid
    dwell = WorkerSettings().inactivity_dwell_days
    for events in changes.values():
        for before, after in itertools.pairwise(events):
            if after["reason"] == "inactivity":
                gap = datetime.fromisoformat(after["event_time"]) - datetime.fromisoformat(before["event_time"])
                assert gap.total_seconds() / 86_400 > dwell, (after["customer_id"], before, after)
    segments = _published_segments(records)
    expected = _segment_products(truth.product_lines, segments)
    lines = truth.product_lines[truth.product_lines["customer_id"].isin(segments)]
    by_lines = lines["customer_id"].value_counts()  # most product lines first
    for cid in [*by_lines.index[:: len(by_lines) // 6], by_lines.index[-1]]:
        had = set(lines.loc[lines["customer_id"] == cid, "stock_code"])
        assert recommend(redis_client, keys, cid, 10) == _expected_recommendations(expected[segments[cid]], had, 10)
    unpublished = next(cid for cid, record in records.items() if not record["published"])
    assert recommend(redis_client, keys, unpublished, 10) == []
    counters = redis_client.hgetall(f"{keys.prefix}worker:counters")
    print(f"\nworker counters: {counters}; customers with published changes: {len(published)}")


def _worker_process(settings: Settings, group: str, batch: int) -> subprocess.Popen[bytes]:
    env = os.environ | as_environment(settings) | {"SEG_WORKER_BATCH_MAX_RECORDS": str(batch)}
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--group", group, "--until-caught-up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _applied(client: redis.Redis, keys: Keys, topic: str) -> int:
    return sum(int(v) for v in client.hgetall(keys.offsets(topic)).values())


def _wait_for_progress(client: redis.Redis, keys: Keys, topic: str, beyond: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        applied = _applied(client, keys, topic)
        if applied > beyond:
            return applied
        time.sleep(0.05)
    raise AssertionError(f"no progress beyond {beyond} offsets in {timeout_s} s")


def test_sigkill_five_times_then_state_equals_batch(
    settings: Settings, redis_client: redis.Redis, dataset: Path, tmp_path: Path, truth: Truth
) -> None:
    keys = Keys(settings.redis.key_prefix)
    _prepare(settings, redis_client, dataset, tmp_path)
    group = f"crash-{settings.redis.key_prefix}"
    rng = random.Random(7)
    applied = 0
    for _ in range(5):
        process = _worker_process(settings, group, batch=2_000)
        applied = _wait_for_progress(redis_client, keys, settings.topics.invoices, applied)
        time.sleep(rng.uniform(0.0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait()
        applied = _applied(redis_client, keys, settings.topics.invoices)
    final = _worker_process(settings, group, batch=2_000)
    assert final.wait(timeout=300) == 0
    _assert_matches_batch(redis_client, keys, truth)


def test_three_workers_one_killed_state_equals_batch(
    settings: Settings, redis_client: redis.Redis, dataset: Path, tmp_path: Path, truth: Truth
) -> None:
    keys = Keys(settings.redis.key_prefix)
    _prepare(settings, redis_client, dataset, tmp_path)
    group = f"scale-{settings.redis.key_prefix}"
    workers = [_worker_process(settings, group, batch=1_000) for _ in range(3)]
    _wait_for_progress(redis_client, keys, settings.topics.invoices, 30_000)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    for process in workers[1:]:
        assert process.wait(timeout=300) == 0
    _assert_matches_batch(redis_client, keys, truth)
