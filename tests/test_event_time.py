"""Decisions that are time-correct and reproducible, on the real data.

* The same stream gives the same segment changes and the same state, however it
  is batched and however many workers share it: runs that differ only in
  ``batch_max_records`` (500 and 20,000) or in the number of workers (one, or
  three each owning a partition) publish byte-identical changes per customer
  (repeats dropped by sequence) and leave identical Redis state, key by key.
* Nor however fast it arrives: a worker reading a replay paced at about half a
  day of events per second (small batches cut by arrival, partitions caught up
  most of the time) publishes and stores what one reading it all at once does.
* Each customer is scored as of its own event: a purchase-triggered change
  carries the recency of that moment (the time since the customer's last
  purchase at or before it), never another partition's clock.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis

from harness.compare import differences, state, unique_changes
from shared.settings import Settings, isolated_settings
from shared.state.keys import Keys
from tests.pipeline import REAL_CUTOFF, applied, bootstrap, replay_file, run_worker, worker_process
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history

END = REAL_CUTOFF + timedelta(days=92)  # June to August: every kind of change, a third of the stream


def _run(settings: Settings, client: redis.Redis, dataset: Path, tmp_path: Path, batch: int) -> dict[str, object]:
    bootstrap(settings, client, dataset, REAL_CUTOFF, tmp_path)
    replay_file(settings, dataset, REAL_CUTOFF, tmp_path, end=END)
    run_worker(settings, batch_max_records=batch)
    return state(client, Keys(settings.redis.key_prefix), settings.topics.partitions)


@pytest.fixture(scope="module")
def purchases(dataset: Path) -> dict[str, list[datetime]]:
    """Every customer's purchase times (cleaned product purchase lines), sorted."""
    lines = clean(load_history(dataset)).customers
    bought = lines[lines["kind"] == "purchase"]
    return {cid: sorted(times) for cid, times in bought.groupby("customer_id")["invoice_date"].apply(list).items()}


def test_batch_size_and_worker_count_change_nothing_that_is_published_or_stored(
    kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis, dataset: Path, tmp_path: Path
) -> None:
    small = isolated_settings(kafka_bootstrap, redis_url, "small")
    large = isolated_settings(kafka_bootstrap, redis_url, "large")
    three = isolated_settings(kafka_bootstrap, redis_url, "three")
    for name in ("small", "large", "three"):
        (tmp_path / name).mkdir()
    try:
        small_state = _run(small, redis_client, dataset, tmp_path / "small", batch=500)
        large_state = _run(large, redis_client, dataset, tmp_path / "large", batch=20_000)
        assert differences(small_state, large_state, small.redis.key_prefix, large.redis.key_prefix) == []
        small_changes, large_changes = unique_changes(small), unique_changes(large)
        assert len(small_changes) > 1_000
        assert small_changes == large_changes
        three_state = _run_three(three, redis_client, dataset, tmp_path / "three")
        assert differences(large_state, three_state, large.redis.key_prefix, three.redis.key_prefix) == []
        assert unique_changes(three) == large_changes
        print(
            f"\n{sum(len(e) for e in small_changes.values()):,} changes of {len(small_changes):,} customers identical "
            "with batches of 500 and 20,000 and with three workers"
        )
    finally:
        for settings in (small, large, three):
            for key in redis_client.scan_iter(match=settings.redis.key_prefix + "*", count=1000):
                redis_client.delete(key)


def _run_three(settings: Settings, client: redis.Redis, dataset: Path, tmp_path: Path) -> dict[str, object]:
    """Three worker processes in one group, each owning a partition: they wait for each other's daily sweeps."""
    bootstrap(settings, client, dataset, REAL_CUTOFF, tmp_path)
    replay_file(settings, dataset, REAL_CUTOFF, tmp_path, end=END)
    group = f"g-{settings.redis.key_prefix}"
    workers = [worker_process(settings, group, tmp_path / f"worker{n}.log") for n in range(3)]
    for n, worker in enumerate(workers):
        assert worker.wait(timeout=600) == 0, (tmp_path / f"worker{n}.log").read_text()[-3000:]
    return state(client, Keys(settings.redis.key_prefix), settings.topics.partitions)


def test_a_paced_replay_gives_what_a_replay_at_full_speed_gives(
    kafka_bootstrap: str, redis_url: str, redis_client: redis.Redis, dataset: Path, tmp_path: Path
) -> None:
    end = REAL_CUTOFF + timedelta(days=10)
    fast = isolated_settings(kafka_bootstrap, redis_url, "fast")
    paced = isolated_settings(kafka_bootstrap, redis_url, "paced")
    (tmp_path / "fast").mkdir()
    (tmp_path / "paced").mkdir()
    bootstrap(fast, redis_client, dataset, REAL_CUTOFF, tmp_path / "fast")
    replay_file(fast, dataset, REAL_CUTOFF, tmp_path / "fast", end=end)
    run_worker(fast)
    bootstrap(paced, redis_client, dataset, REAL_CUTOFF, tmp_path / "paced")
    keys, partitions = Keys(paced.redis.key_prefix), paced.topics.partitions
    worker = worker_process(paced, f"g-{keys.prefix}", tmp_path / "worker.log", until_caught_up=False)
    try:
        sent = replay_file(paced, dataset, REAL_CUTOFF, tmp_path / "paced", end=end, speed=43_200.0)
        deadline = time.monotonic() + 120
        while applied(redis_client, keys, partitions) < sent:
            assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.1)
    finally:
        worker.terminate()
    assert worker.wait(timeout=60) == 0
    batches = (tmp_path / "worker.log").read_text()
    got = state(redis_client, keys, partitions)
    expected = state(redis_client, Keys(fast.redis.key_prefix), partitions)
    assert differences(expected, got, fast.redis.key_prefix, paced.redis.key_prefix) == []
    assert unique_changes(paced) == unique_changes(fast), batches[-2000:]


def test_each_customer_is_scored_as_of_its_own_event(
    settings: Settings,
    redis_client: redis.Redis,
    dataset: Path,
    tmp_path: Path,
    purchases: dict[str, list[datetime]],
) -> None:
    bootstrap(settings, redis_client, dataset, REAL_CUTOFF, tmp_path)
    replay_file(settings, dataset, REAL_CUTOFF, tmp_path, end=END)
    run_worker(settings)
    checked = 0
    for customer, events in unique_changes(settings).items():
        for value in events:
            change = orjson.loads(value)
            if change["reason"] not in ("purchase", "first_purchase", "cancellation"):
                continue
            at = datetime.fromisoformat(change["event_time"])
            before = [moment for moment in purchases[customer] if moment <= at]
            expected = (at - before[-1]).total_seconds() / 86_400
            assert change["features"]["recency_days"] == pytest.approx(expected, abs=1e-9), (customer, at)
            if change["reason"] != "cancellation":
                assert at in purchases[customer], (customer, at)  # a purchase of its own, scored at its time
            checked += 1
    assert checked > 1_000
    print(f"\n{checked:,} event-triggered changes carry their own event's recency")
