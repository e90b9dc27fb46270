"""A Redis outage in the middle of a stream: the worker waits, reloads, and ends exactly where a calm run ends.

The worker's own redis-server (AOF on) is stopped after a few batches and started
again on the same port and directory two seconds later. Whatever batch was in
flight had already changed the worker's memory; a correct worker reloads from
Redis instead of re-running it, so no line is counted twice or lost: every
customer's aggregates and every segment's product counts equal those of the
same stream applied without an outage, and the product counts equal the sum
over each segment's published members (which members are published where may
differ from the calm run: the debounce's pending confirmations live in memory).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import redis

from shared.features.aggregates import CustomerAggregates
from shared.local_services import RedisServer
from shared.redis_client import make_redis
from shared.settings import RedisSettings, Settings
from shared.state_keys import Keys
from tests.tools_helpers import CUTOFF, bootstrap_simulated, replay_simulated
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

OPTIONS = {"batch_max_records": 100, "retry_initial_s": 0.2, "retry_max_s": 1.0}


def _aggregates(client: redis.Redis, keys: Keys) -> dict[str, str]:
    return {cid: client.hget(keys.customer(cid), "agg") for cid in client.smembers(keys.customers)}


def _products_match_members(client: redis.Redis, keys: Keys) -> None:
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    for cid in client.smembers(keys.customers):
        record = client.hgetall(keys.customer(cid))
        if record.get("published"):
            units = CustomerAggregates.from_json(record["agg"]).product_units
            expected[keys.segment_products(int(record["published"]))].update(units)
    stored = {
        key: dict(client.zrange(key, 0, -1, withscores=True))
        for key in client.scan_iter(match=keys.segment_products("*"))
    }
    assert stored == {key: {p: float(n) for p, n in units.items() if n} for key, units in expected.items()}


def _calm_run(settings: Settings, client: redis.Redis, tmp_path: Path) -> dict[str, str]:
    keys = Keys(settings.redis.key_prefix)
    bootstrap_simulated(settings, client, tmp_path, stream_days=30)
    replay_simulated(settings, tmp_path, CUTOFF)
    Worker(settings, WorkerSettings(group_id=f"g-{keys.prefix}", **OPTIONS)).run(until_caught_up=True)
    return _aggregates(client, keys)


def test_a_redis_outage_mid_stream_loses_and_doubles_nothing(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _calm_run(settings, redis_client, tmp_path / "calm")
    server = RedisServer(workdir=tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server.start()
    try:
        own = settings.model_copy(update={"redis": RedisSettings(url=server.url, key_prefix=settings.redis.key_prefix)})
        client = make_redis(own.redis)
        keys = Keys(own.redis.key_prefix)
        bootstrap_simulated(own, client, tmp_path, stream_days=30)
        own.topics.invoices = settings.topics.invoices  # the calm run's stream, already on the broker
        worker = Worker(own, WorkerSettings(group_id=f"outage-{keys.prefix}", **OPTIONS))
        outage: dict[str, int] = {}

        def interrupt() -> None:
            deadline = time.monotonic() + 60
            while worker.batches < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            server.stop()
            outage["at_batch"] = worker.batches
            time.sleep(2.0)
            server.start()

        thread = threading.Thread(target=interrupt)
        thread.start()
        worker.run(until_caught_up=True)
        thread.join()
        assert 3 <= outage["at_batch"] < worker.batches, "the outage fell in the middle of the stream"
        assert any("Redis unavailable" in record.message for record in caplog.records)
        assert _aggregates(client, keys) == expected
        _products_match_members(client, keys)
    finally:
        server.stop()
