"""Outages in the middle of a stream: the worker recovers and ends exactly where a calm run ends.

* Redis: the worker's own redis-server (AOF on) is stopped after a few batches and
  started again on the same port and directory two seconds later. Whatever batch
  was in flight had already changed the worker's memory; a correct worker reloads
  from Redis instead of re-running it.
* The fetcher process is killed after a few batches: the worker starts a new one
  from the offsets it has applied, neither skipping nor re-applying a record.

Either way no line is counted twice or lost, and no decision differs: the whole
state (every customer record and members hash, product popularity, guests, model
statistics, dedup sets, offsets and clocks) equals the one of the same stream
applied without an outage, key by key, and so do the published segment changes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.compare import differences, state
from rig.local_services import RedisServer
from shared.redis_client import make_redis
from shared.settings import RedisSettings, Settings
from shared.state.keys import Keys
from tests.tools_helpers import CUTOFF, bootstrap_simulated, replay_simulated
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

OPTIONS: dict[str, Any] = {"batch_max_records": 100, "retry_initial_s": 0.2, "retry_max_s": 1.0}


def _calm_run(settings: Settings, client: redis.Redis, tmp_path: Path, stream_days: int = 30) -> dict[str, object]:
    keys = Keys(settings.redis.key_prefix)
    bootstrap_simulated(settings, client, tmp_path, stream_days=stream_days)
    replay_simulated(settings, tmp_path, CUTOFF)
    Worker(settings, WorkerSettings(group_id=f"g-{keys.prefix}", **OPTIONS)).run(until_caught_up=True)
    return state(client, keys, settings.topics.partitions)


def _same_state(expected: dict[str, object], settings: Settings, client: redis.Redis, keys: Keys) -> None:
    got = state(client, keys, settings.topics.partitions)
    assert differences(expected, got, settings.redis.key_prefix, keys.prefix) == []


def _interrupted_run(
    settings: Settings, redis_url: str, tmp_path: Path, stream_days: int, interrupt: Callable[[Worker], None]
) -> tuple[redis.Redis, Keys]:
    """The calm run's stream again, bootstrapped into ``redis_url``; ``interrupt`` runs once 3 batches are in.

    Returns the client and keys of the run's state, after checking that the
    interruption fell in the middle of the stream.
    """
    prefix = f"interrupted-{settings.redis.key_prefix}"
    own = settings.model_copy(update={"redis": RedisSettings(url=redis_url, key_prefix=prefix)})
    client = make_redis(own.redis)
    keys = Keys(own.redis.key_prefix)
    bootstrap_simulated(own, client, tmp_path, stream_days=stream_days)
    own.topics.invoices = settings.topics.invoices  # the calm run's stream, already on the broker
    worker = Worker(own, WorkerSettings(group_id=f"interrupted-{settings.redis.key_prefix}", **OPTIONS))
    at_batch: list[int] = []

    def wait_then_interrupt() -> None:
        deadline = time.monotonic() + 60
        while worker.batches < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        at_batch.append(worker.batches)
        interrupt(worker)

    thread = threading.Thread(target=wait_then_interrupt)
    thread.start()
    worker.run(until_caught_up=True)
    thread.join()
    assert 3 <= at_batch[0] < worker.batches, "the interruption fell in the middle of the stream"
    return client, keys


def test_a_redis_outage_mid_stream_loses_and_doubles_nothing(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _calm_run(settings, redis_client, tmp_path / "calm")
    server = RedisServer(workdir=tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    server.start()

    def outage(worker: Worker) -> None:
        server.stop()
        time.sleep(2.0)
        server.start()

    try:
        client, keys = _interrupted_run(settings, server.url, tmp_path, 30, outage)
        assert any("Redis unavailable" in record.message for record in caplog.records)
        _same_state(expected, settings, client, keys)
    finally:
        server.stop()


def test_a_killed_fetcher_is_replaced_and_nothing_is_lost_or_doubled(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Long enough that, when it is killed, the fetcher holds frames the worker has not read:
    # its replacement must fetch them again, from the offsets the worker has applied.
    expected = _calm_run(settings, redis_client, tmp_path / "calm", stream_days=150)
    killed: list[int] = []

    def kill(worker: Worker) -> None:
        assert worker.parts is not None
        killed.append(worker.parts.fetcher.pid)
        os.kill(killed[0], signal.SIGKILL)

    client, keys = _interrupted_run(settings, settings.redis.url, tmp_path, 150, kill)
    assert any("fetcher process exited" in record.message for record in caplog.records)
    _same_state(expected, settings, client, keys)
