"""The streaming worker against a real broker, a real Redis (single and Cluster) and the real data.

Bootstrap up to the cutoff, replay the rest, and the state in Redis must equal an
independent pandas computation over the whole file (:mod:`tests.truth`), also when
workers are killed: every customer's aggregates, features and vector consistent
with its segment, the guest statistics, and the product popularity per published
segment (and the recommendations read from it).
"""

from __future__ import annotations

import itertools
import random
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
import redis

from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import worker_counters
from shared.state.recommendations import Recommendation, recommend
from tests.pipeline import applied, changes_by_customer, prepare_real, run_worker, worker_process
from tests.truth import Truth, assert_matches_batch, batch_truth, segment_units
from worker.stream.settings import WorkerSettings


@pytest.fixture(scope="module")
def truth(dataset: Path) -> Truth:
    return batch_truth(dataset)


def _expected_recommendations(segment: dict[str, int], had: set[str], n: int) -> list[Recommendation]:
    """The segment's products with positive net units that the customer never had, most units first
    (ties: stock code descending)."""
    ranked = sorted(((units, code) for code, units in segment.items() if units > 0 and code not in had), reverse=True)
    return [Recommendation(code, units) for units, code in ranked[:n]]


def test_stream_equals_batch_and_published_segments_match(
    settings_on_both: Settings, client_on_both: redis.Redis, dataset: Path, tmp_path: Path, truth: Truth
) -> None:
    settings, client = settings_on_both, client_on_both
    keys = Keys(settings.redis.key_prefix)
    prepare_real(settings, client, dataset, tmp_path)
    run_worker(settings)
    records = assert_matches_batch(client, keys, truth, settings.topics.partitions)
    changes = changes_by_customer(settings)
    published = {cid: events[-1] for cid, events in changes.items()}
    assert len(published) > 1000
    for cid, event in published.items():
        assert event["current"]["id"] == records[cid].published, cid
        assert records[cid].seq == event["sequence"], cid
        assert records[cid].published_at == datetime.fromisoformat(event["event_time"]), cid
    dwell = WorkerSettings().inactivity_dwell_days
    for events in changes.values():
        for before, after in itertools.pairwise(events):
            if after["reason"] == "inactivity":
                gap = datetime.fromisoformat(after["event_time"]) - datetime.fromisoformat(before["event_time"])
                assert gap.total_seconds() / 86_400 > dwell, (after["customer_id"], before, after)
    segments = {cid: r.published for cid, r in records.items() if r.published >= 0}
    expected = segment_units(truth.product_lines, segments)
    lines = truth.product_lines[truth.product_lines["customer_id"].isin(segments)]
    by_lines = lines["customer_id"].astype(str).value_counts()  # most product lines first
    for cid in [*by_lines.index[:: len(by_lines) // 6], by_lines.index[-1]]:
        had = set(lines.loc[lines["customer_id"] == cid, "stock_code"])
        assert recommend(client, keys, cid, 10) == _expected_recommendations(expected[segments[cid]], had, 10)
    unpublished = next(cid for cid, record in records.items() if record.published < 0)
    assert recommend(client, keys, unpublished, 10) == []
    print(f"\nworker counters: {worker_counters(client, keys)}; customers with published changes: {len(published)}")


def _wait_for_progress(client: redis.Redis, keys: Keys, partitions: int, beyond: int, timeout_s: float = 90) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = applied(client, keys, partitions)
        if done > beyond:
            return done
        time.sleep(0.05)
    raise AssertionError(f"no progress beyond {beyond} offsets in {timeout_s} s")


def test_sigkill_five_times_then_state_equals_batch(
    settings_on_both: Settings, client_on_both: redis.Redis, dataset: Path, tmp_path: Path, truth: Truth
) -> None:
    settings, client = settings_on_both, client_on_both
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    prepare_real(settings, client, dataset, tmp_path)
    group = f"crash-{settings.redis.key_prefix}"
    rng = random.Random(7)
    done = 0
    for _ in range(5):
        process = worker_process(settings, group, batch_max_records="2000")
        done = _wait_for_progress(client, keys, partitions, done)
        time.sleep(rng.uniform(0.0, 0.8))
        process.send_signal(signal.SIGKILL)
        process.wait()
        done = applied(client, keys, partitions)
    final = worker_process(settings, group, batch_max_records="2000")
    assert final.wait(timeout=300) == 0
    assert_matches_batch(client, keys, truth, partitions)


def test_three_workers_one_killed_state_equals_batch(
    settings_on_both: Settings, client_on_both: redis.Redis, dataset: Path, tmp_path: Path, truth: Truth
) -> None:
    settings, client = settings_on_both, client_on_both
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    prepare_real(settings, client, dataset, tmp_path)
    group = f"scale-{settings.redis.key_prefix}"
    workers = [worker_process(settings, group, batch_max_records="1000") for _ in range(3)]
    _wait_for_progress(client, keys, partitions, 30_000)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    for process in workers[1:]:
        assert process.wait(timeout=300) == 0
    assert_matches_batch(client, keys, truth, partitions)
