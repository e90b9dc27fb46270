"""Faults mid-stream, against real processes: nothing lost, nothing doubled, no decision different.

* The broker stalls (SIGSTOP) for longer than the producer's delivery timeout:
  the worker keeps retrying, trims nothing unacknowledged, and in the end every
  segment change of a calm run is on the topic (repeats dropped by sequence).
* A zombie: a worker is SIGSTOPped past its session timeout while another takes
  over, then SIGCONTed; nothing it still tries to write lands (owner epochs), and
  the final state equals a calm run's.
* Redis loses its last writes (an AOF copy, the stream on until Kafka's committed
  offsets pass the copy, SIGKILL, the copy restored, as a power loss under
  ``appendfsync everysec`` does): the worker sees that Redis went back, moves to a
  new sequence generation, and no (customer, sequence) pair on the topic ever
  carries two different events; the latest event of every customer is what Redis holds.
* Stored offsets beyond the log (the broker lost its data): the worker stops with
  an error that says how to recover, and ``reset-offsets`` recovers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import redis

from harness.compare import differences, state, unique_changes
from rig.local_services import ObjectStore, RedisServer, TansuBroker
from shared.partitioner import partition_of
from shared.redis_client import make_redis
from shared.settings import RedisSettings, Settings, as_environment, isolated_settings
from shared.state.keys import Keys
from shared.state.layout import partition_count
from tests.faults import Landed, one_killed_one_stopped, power_loss, zombie
from tests.pipeline import ROOT, applied, kafka_committed, prepare_simulated, run_worker
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

STREAM_DAYS = 40
FAST: dict[str, Any] = {"batch_max_records": 300, "retry_initial_s": 0.2, "retry_max_s": 1.0}
WORKER = {"batch_max_records": "300"}  # the same batches, for a worker process


Calm = tuple[dict[str, object], dict[str, list[bytes]]]  # the calm run's state and changes


def _calm(settings: Settings, client: redis.Redis, tmp_path: Path) -> Calm:
    (tmp_path / "calm").mkdir()
    prepare_simulated(settings, client, tmp_path / "calm", STREAM_DAYS)
    run_worker(settings, **FAST)
    return state(client, Keys(settings.redis.key_prefix), settings.topics.partitions), unique_changes(settings)


def _assert_as_calm(calm: Calm, settings: Settings, client: redis.Redis, own: Settings) -> None:
    """``own``'s run ends as the calm run: its state equal key by key, its changes byte for byte."""
    expected_state, expected_changes = calm
    got = state(client, Keys(own.redis.key_prefix), own.topics.partitions)
    assert differences(expected_state, got, settings.redis.key_prefix, own.redis.key_prefix) == []
    assert unique_changes(own) == expected_changes


def _second_stream(
    settings: Settings, client: redis.Redis, tmp_path: Path, label: str
) -> tuple[Settings, Keys, int, Landed]:
    """The calm run's stream again, for worker processes: its settings, keys, records sent, and a progress probe."""
    own = isolated_settings(settings.kafka.bootstrap_servers, settings.redis.url, label)
    keys = Keys(own.redis.key_prefix)
    sent = prepare_simulated(own, client, tmp_path, STREAM_DAYS)
    return own, keys, sent, lambda: applied(client, keys, own.topics.partitions)


def _while_running(worker: Worker, after_batches: int, action: Callable[[], None]) -> threading.Thread:
    def wait_then_act() -> None:
        deadline = time.monotonic() + 120
        while worker.batches < after_batches and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=wait_then_act)
    thread.start()
    return thread


def test_a_broker_stall_past_the_delivery_timeout_loses_no_change(
    settings: Settings, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    calm = _calm(settings, redis_client, tmp_path)
    with TansuBroker() as broker:
        own = isolated_settings(broker.bootstrap_servers, redis_url, "stall")
        own = own.model_copy(
            update={"kafka": own.kafka.model_copy(update={"request_timeout_ms": 1_000, "delivery_timeout_ms": 2_500})}
        )
        prepare_simulated(own, redis_client, tmp_path, STREAM_DAYS)
        worker = Worker(own, WorkerSettings(group_id=f"g-{own.redis.key_prefix}", publish_timeout_s=2.0, **FAST))

        def stall() -> None:
            broker.pause()
            time.sleep(8.0)
            broker.resume()

        thread = _while_running(worker, 3, stall)
        worker.run(until_caught_up=True)
        thread.join()
        _assert_as_calm(calm, settings, redis_client, own)


def test_a_zombie_worker_writes_nothing_once_another_took_over(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    calm = _calm(settings, redis_client, tmp_path)
    own, keys, sent, landed = _second_stream(settings, redis_client, tmp_path, "zombie")
    processes = zombie(own, f"g-{keys.prefix}", tmp_path, landed, sent, **WORKER)
    _exited_cleanly(processes, ["first.log", "second.log"], tmp_path)
    assert "rejoining" in (tmp_path / "first.log").read_text(), "the first worker was never fenced"
    _assert_as_calm(calm, settings, redis_client, own)


def test_three_workers_one_killed_one_stopped_end_as_a_calm_run(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    calm = _calm(settings, redis_client, tmp_path)
    own, keys, sent, landed = _second_stream(settings, redis_client, tmp_path, "three")
    workers = one_killed_one_stopped(own, f"g-{keys.prefix}", tmp_path, landed, sent, **WORKER)
    assert workers[0].returncode == -signal.SIGKILL
    _exited_cleanly(workers[1:], ["worker-1.log", "worker-2.log"], tmp_path)
    _assert_as_calm(calm, settings, redis_client, own)


def test_a_broker_restart_mid_stream_loses_no_change(
    settings: Settings, redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    calm = _calm(settings, redis_client, tmp_path)
    with ObjectStore() as store, TansuBroker(storage=store) as broker:
        own = isolated_settings(broker.bootstrap_servers, redis_url, "restart")
        prepare_simulated(own, redis_client, tmp_path, STREAM_DAYS)
        worker = Worker(own, WorkerSettings(group_id=f"g-{own.redis.key_prefix}", publish_timeout_s=2.0, **FAST))
        restarted_at: list[int] = []

        def restart() -> None:
            restarted_at.append(worker.batches)
            broker.restart(down_s=3.0)

        thread = _while_running(worker, 3, restart)
        worker.run(until_caught_up=True)
        thread.join()
        assert restarted_at[0] < worker.batches, "the restart fell in the middle of the stream"
        _assert_as_calm(calm, settings, redis_client, own)


def _exited_cleanly(processes: Sequence[subprocess.Popen[bytes]], logs: list[str], tmp_path: Path) -> None:
    for name, process in zip(logs, processes, strict=True):
        assert process.returncode == 0, (tmp_path / name).read_text()[-3000:]


def test_redis_losing_its_last_second_never_republishes_a_used_sequence(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    (tmp_path / "redis").mkdir()
    server = RedisServer(workdir=tmp_path / "redis", appendonly=True)
    server.start()
    try:
        own = settings.model_copy(update={"redis": RedisSettings(url=server.url, key_prefix=settings.redis.key_prefix)})
        client = make_redis(own.redis)
        prepare_simulated(own, client, tmp_path, STREAM_DAYS)
        worker = Worker(own, WorkerSettings(group_id=f"g-{own.redis.key_prefix}", **(FAST | {"batch_max_records": 50})))
        keys = Keys(own.redis.key_prefix)
        landed = lambda: applied(client, keys, own.topics.partitions)  # noqa: E731
        with kafka_committed(own, worker.options.group_id) as committed:
            thread = _while_running(worker, 0, lambda: power_loss(server, landed, committed, tmp_path))
            worker.run(until_caught_up=True)
            thread.join()
        changes = unique_changes(own)  # asserts one payload per (customer, sequence)
        generations = {orjson.loads(events[-1])["sequence"] // 1_000_000_000 for events in changes.values()}
        assert max(generations) >= 1, "the worker noticed that Redis went back"
        partitions = partition_count(client, keys)
        for customer, events in changes.items():
            latest = orjson.loads(events[-1])
            record = client.hgetall(keys.customer(partition_of(customer, partitions), customer))
            assert int(record["seq"]) == latest["sequence"], customer
            assert int(record["published"]) == latest["current"]["id"], customer
    finally:
        server.stop()


def test_stored_offsets_beyond_the_log_stop_the_worker_until_reset(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    prepare_simulated(settings, redis_client, tmp_path, 10)
    run_worker(settings)
    keys = Keys(settings.redis.key_prefix)
    redis_client.hset(keys.checkpoint(0), "offset", "1000000")  # as if the broker had lost its log
    env = os.environ | as_environment(settings)
    command = [sys.executable, "-m", "worker", "run", "--group", f"g-{keys.prefix}", "--until-caught-up"]
    stopped = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 2, stopped.stderr
    assert "outside the topic's log" in stopped.stderr and "reset-offsets --to log-end" in stopped.stderr
    reset = [sys.executable, "-m", "worker", "reset-offsets", "--to", "log-end"]
    moved = subprocess.run(reset, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert moved.returncode == 0 and "partition 0: stored offset 1000000 ->" in moved.stdout, moved.stderr
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
