"""Model refresh against a real broker and Redis: stable ids, v+1, one ``model_refresh`` change per moved customer.

Two paths to the same end: a worker that is running when the refresh lands
(it switches while idle), and a worker that starts after it (it finds its
partitions' statistics stamped with the old version and re-scores them on
assignment). Either way every customer ends up scored under the new model and
a later restart changes nothing more.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import redis

from harness.compare import state
from shared.contracts.segment_change import SegmentChange
from shared.kafka_clients import read_to_end
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import stream_clock, worker_counters
from shared.state.model_stats import VERSION_FIELD
from shared.state.model_store import require_current
from tests.pipeline import applied, records
from tests.tools_helpers import CUTOFF, bootstrap_simulated, replay_simulated
from worker.refresh.refit import RefreshResult, refit
from worker.refresh.settings import RefreshSettings
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings


def _worker(settings: Settings) -> Worker:
    return Worker(settings, WorkerSettings(group_id=f"g-{settings.redis.key_prefix}", model_check_s=0.2))


def _published(client: redis.Redis, keys: Keys, partitions: int) -> dict[str, int]:
    """Every customer's published segment id (-1: none yet)."""
    return {cid: record.published for cid, record in records(client, keys, partitions).items()}


def _refresh_changes(settings: Settings) -> list[SegmentChange]:
    changes = [
        SegmentChange.model_validate_json(r.value) for r in read_to_end(settings.kafka, settings.topics.segment_changes)
    ]
    unique = {(change.customer_id, change.sequence): change for change in changes}
    return [change for change in unique.values() if change.reason == "model_refresh"]


def _refit(client: redis.Redis, keys: Keys) -> RefreshResult:
    # A refit with another seed than the bootstrap's moves some customers; k and the scaler stay.
    as_of = stream_clock(client, keys)
    assert as_of is not None, "the stream has not reached any event yet"
    return refit(client, keys, as_of, RefreshSettings(seed=7, n_init=3))


def _check_refresh(
    settings: Settings, client: redis.Redis, keys: Keys, before: dict[str, int], result: RefreshResult
) -> None:
    partitions = settings.topics.partitions
    previous, snapshot = result.previous, result.snapshot
    assert snapshot.version == previous.version + 1 == int(client.get(keys.model_current))
    old = {segment.id: segment for segment in previous.segments}
    new = {segment.id: segment for segment in snapshot.segments}
    assert result.kept, "a refit on the same customers keeps at least one segment"
    for segment_id in result.kept:
        assert new[segment_id].name == old[segment_id].name
    assert len({segment.name for segment in snapshot.segments}) == snapshot.k, "labels are unique within a model"
    assert all(segment.description.startswith("median ") for segment in snapshot.segments)
    assert set(result.created).isdisjoint(old) and set(result.retired).isdisjoint(new)
    after = _published(client, keys, partitions)
    moved = {cid for cid in after if after[cid] != before.get(cid, -1)}
    refreshed = _refresh_changes(settings)
    per_customer = Counter(change.customer_id for change in refreshed)
    assert moved, "the refit moved no customer: the test would prove nothing"
    assert set(per_customer) == moved and set(per_customer.values()) <= {1}
    assert all(change.model_version == snapshot.version for change in refreshed)
    assert all(change.current.id == after[change.customer_id] for change in refreshed)
    centroids = np.array([segment.centroid for segment in snapshot.segments])
    ids = [segment.id for segment in snapshot.segments]
    scored = [record for record in records(client, keys, partitions).values() if record.vector is not None]
    assert scored
    for record in scored:
        assert record.segment in new
        assert record.published == record.segment
        assert ids[int(np.linalg.norm(centroids - np.array(record.vector), axis=1).argmin())] == record.segment
    for partition in range(partitions):
        assert client.hget(keys.stats(partition), VERSION_FIELD) == str(snapshot.version), partition


def _restart_changes_nothing(settings: Settings, client: redis.Redis, keys: Keys) -> None:
    partitions = settings.topics.partitions
    before, stored = _published(client, keys, partitions), state(client, keys, partitions)
    count = len(_refresh_changes(settings))
    rescored = worker_counters(client, keys).get("model_switch_rescored", 0)
    worker = _worker(settings)
    worker.run(until_caught_up=True)
    assert worker.processor is not None
    assert worker.processor.model.version == require_current(client, keys).version
    assert _published(client, keys, partitions) == before
    assert state(client, keys, partitions) == stored
    assert len(_refresh_changes(settings)) == count
    assert worker_counters(client, keys).get("model_switch_rescored", 0) == rescored


def test_refresh_while_the_worker_runs(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=30)
    sent = replay_simulated(settings, tmp_path, CUTOFF)
    worker = _worker(settings)
    before: dict[str, int] = {}
    results: list[RefreshResult] = []

    def version() -> int | None:
        return worker.processor.model.version if worker.processor is not None else None

    def refresh_once_caught_up() -> None:
        try:
            deadline = time.monotonic() + 120
            # Caught up: every record sent is applied (the topic is the test's own, its offsets start at 0).
            while applied(redis_client, keys, partitions) < sent and time.monotonic() < deadline:
                time.sleep(0.2)
            before.update(_published(redis_client, keys, partitions))
            result = _refit(redis_client, keys)
            results.append(result)
            while version() != result.snapshot.version and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            worker.stop()

    helper = threading.Thread(target=refresh_once_caught_up)
    helper.start()
    worker.run()
    helper.join()
    [result] = results
    assert version() == result.snapshot.version
    _check_refresh(settings, redis_client, keys, before, result)
    _restart_changes_nothing(settings, redis_client, keys)


def test_refresh_while_no_worker_runs_is_applied_on_restart(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    keys = Keys(settings.redis.key_prefix)
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=30)
    replay_simulated(settings, tmp_path, CUTOFF)
    _worker(settings).run(until_caught_up=True)
    before = _published(redis_client, keys, settings.topics.partitions)
    result = _refit(redis_client, keys)
    _worker(settings).run(until_caught_up=True)
    _check_refresh(settings, redis_client, keys, before, result)
    _restart_changes_nothing(settings, redis_client, keys)
