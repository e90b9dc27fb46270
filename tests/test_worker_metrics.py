"""The worker's /metrics, /healthz and /readyz while events flow, against a real broker and Redis.

The worker runs in the test's main thread (it installs signal handlers); a second
thread feeds it simulated invoices, scrapes the endpoints and stops it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from kafka.producer.future import RecordMetadata
from prometheus_client.parser import text_string_to_metric_families

from rig.local_services import free_port
from shared.exceptions import ConfigError
from shared.kafka_clients import make_producer
from shared.logs import JsonFormatter
from shared.settings import Settings, load
from shared.state.keys import Keys
from shared.state.layout import worker_counters
from tests.tools_helpers import CUTOFF, bootstrap_simulated, replay_simulated
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

T = TypeVar("T")
Samples = list[tuple[str, dict[str, str], float]]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _scrape(port: int) -> Samples:
    status, text = _get(port, "/metrics")
    assert status == 200
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for n, found, v in samples if n == name and labels.items() <= found.items())


def _lags(samples: Samples) -> dict[str, float]:
    return {labels["partition"]: v for n, labels, v in samples if n == "seg_worker_consumer_lag"}


def _wait_for(condition: Callable[[], T | None], what: str, timeout_s: float = 120) -> T:
    """Poll ``condition`` until it returns something truthy; generous, because nothing here measures speed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _answers(port: int) -> bool:
    try:
        _get(port, "/healthz")
    except urllib.error.URLError:
        return False
    return True


def _caught_up(port: int, events: int, partitions: int) -> Samples | None:
    """The scrape once the worker has consumed ``events`` records and every partition's lag is 0."""
    samples = _scrape(port)
    lags = _lags(samples)
    done = _total(samples, "seg_worker_events_total") == events and len(lags) == partitions
    return samples if done and not any(lags.values()) else None


def _send_bad_record(settings: Settings) -> RecordMetadata:
    producer = make_producer(settings.kafka)
    try:
        return producer.send(settings.topics.invoices, key=b"bad", value=b"{not json").get(timeout=30)
    finally:
        producer.close()


class GatedWorker(Worker):
    """A worker whose first assignment waits until the test has probed its endpoints (before it is ready)."""

    def __init__(self, settings: Settings, options: WorkerSettings) -> None:
        super().__init__(settings, options)
        self.gate = threading.Event()

    def on_assigned(self, partitions: set[int]) -> None:
        self.gate.wait(60)
        super().on_assigned(partitions)


def test_endpoints_follow_the_stream(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=30)
    bad_reason = "decode_error"
    port = free_port()
    options = WorkerSettings(group_id=f"metrics-{settings.redis.key_prefix}", metrics_port=port)
    worker = GatedWorker(settings, options)
    partitions = settings.topics.partitions
    before: dict[str, int] = {}

    def feed_and_scrape() -> tuple[Samples, Samples, RecordMetadata, dict[str, int]]:
        try:
            # The worker serves its endpoints once run() has composed its parts, before it owns partitions.
            _wait_for(lambda: _answers(port), "the endpoints")
            before.update({path: _get(port, path)[0] for path in ("/healthz", "/readyz")})
            worker.gate.set()
            _wait_for(lambda: _get(port, "/readyz")[0] == 200, "readiness after the assignment")
            first_sent = replay_simulated(settings, tmp_path, CUTOFF, CUTOFF + timedelta(days=15))
            first = _wait_for(lambda: _caught_up(port, first_sent, partitions), "the first window")
            second_sent = replay_simulated(settings, tmp_path, CUTOFF + timedelta(days=15), CUTOFF + timedelta(days=30))
            bad = _send_bad_record(settings)
            second = _wait_for(lambda: _caught_up(port, first_sent + second_sent + 1, partitions), "the second window")
            return first, second, bad, {path: _get(port, path)[0] for path in ("/healthz", "/readyz")}
        finally:
            worker.stop()

    with caplog.at_level(logging.WARNING, logger="worker"), ThreadPoolExecutor(1) as pool:
        scenario = pool.submit(feed_and_scrape)
        worker.run()
        first, second, bad, after = scenario.result()

    assert before == {"/healthz": 200, "/readyz": 503}
    assert after == {"/healthz": 200, "/readyz": 200}
    assert _total(second, "seg_worker_events_total") > _total(first, "seg_worker_events_total") > 0
    assert _total(second, "seg_worker_batch_seconds_count") > _total(first, "seg_worker_batch_seconds_count") > 0
    assert _total(second, "seg_worker_sweep_seconds_count") > _total(first, "seg_worker_sweep_seconds_count")
    assert _total(second, "seg_worker_segment_changes_total") >= _total(first, "seg_worker_segment_changes_total")
    assert _total(first, "seg_worker_dead_letters_total") == 0
    assert _total(second, "seg_worker_dead_letters_total", reason=bad_reason) == 1
    # Outcomes are the batch counters' names: dead letters are counted by reason, as in Redis.
    outcomes = {labels["outcome"]: v for n, labels, v in second if n == "seg_worker_batch_outcomes_total"}
    assert {o: v for o, v in outcomes.items() if o.startswith("dead_lettered")} == {f"dead_lettered_{bad_reason}": 1}

    keys = Keys(settings.redis.key_prefix)
    assert worker_counters(redis_client, keys)[f"dead_lettered_{bad_reason}"] == 1
    owned = sum(redis_client.scard(keys.customers(partition)) for partition in range(partitions))
    for state in ("assigned", "published"):
        assert _total(second, "seg_worker_segment_customers", state=state) == owned
    segments = {labels["name"] for n, labels, _ in second if n == "seg_worker_segment_customers"}
    assert len(segments - {"unscored"}) == 4  # every segment of the k = 4 model, even when empty

    letters = [json.loads(JsonFormatter().format(r)) for r in caplog.records if "dead letter" in r.getMessage()]
    assert [(e["partition"], e["offset"], e["reason"]) for e in letters] == [(bad.partition, bad.offset, bad_reason)]
    print(f"\nsecond scrape: {len(second)} samples; dead-letter log line: {letters[0]}")


def test_metrics_port_is_validated() -> None:
    with pytest.raises(ConfigError, match="SEG_WORKER_METRICS_PORT"):
        load(WorkerSettings, metrics_port=70_000)
