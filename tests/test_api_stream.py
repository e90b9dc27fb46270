"""``GET /changes/stream``: changes a real worker publishes while a client listens, each once, resumable."""

from __future__ import annotations

import queue
import threading
import time
from datetime import timedelta
from pathlib import Path

import redis
import requests

from shared.contracts.segment_change import SegmentChange
from shared.kafka_clients import read_to_end
from shared.settings import Settings
from tests.api_rig import running_api
from tests.tools_helpers import CUTOFF, bootstrap_simulated, publish, replay_simulated
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

Event = tuple[str, SegmentChange]


class Listener:
    """An SSE client in a thread: every event it receives goes to ``events`` as (id, change)."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.connected = threading.Event()
        self.stopped = threading.Event()
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.response = requests.get(f"{url}/changes/stream", headers=headers, stream=True, timeout=(5, 60))
        assert self.response.status_code == 200
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.connected.wait(10), "no retry line: the stream did not start"

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                line = raw if isinstance(raw, str) else raw.decode()
                if line.startswith("retry:"):
                    self.connected.set()
                elif line == "" and "data" in fields:
                    assert fields["event"] == "segment-change"
                    self.events.put((fields["id"], SegmentChange.model_validate_json(fields["data"])))
                    fields = {}
                elif ":" in line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.strip()
        except (requests.exceptions.ConnectionError, AttributeError):
            pass  # closed by the test
        finally:
            self.stopped.set()

    def take(self, count: int, timeout: float = 60.0, quiet: float = 2.0) -> list[Event]:
        """``count`` events, then proof that nothing more comes for ``quiet`` seconds."""
        taken: list[Event] = []
        deadline = time.monotonic() + timeout
        while len(taken) < count:
            taken.append(self.events.get(timeout=max(0.1, deadline - time.monotonic())))
        try:
            extra = self.events.get(timeout=quiet)
        except queue.Empty:
            return taken
        raise AssertionError(f"an event beyond the {count} expected: {extra}")

    def close(self) -> None:
        self.response.close()


def distinct_on_topic(settings: Settings) -> set[tuple[str, int]]:
    records = read_to_end(settings.kafka, settings.topics.segment_changes)
    return {(c.customer_id, c.sequence) for c in (SegmentChange.model_validate_json(r.value) for r in records)}


def keyed(events: list[Event]) -> list[tuple[str, int]]:
    return [(change.customer_id, change.sequence) for _, change in events]


def test_a_change_published_after_connecting_arrives_once_and_a_reconnect_resumes_without_repeats(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=40)
    replay_simulated(settings, tmp_path, CUTOFF, CUTOFF + timedelta(days=20))
    options = WorkerSettings(group_id=f"g-{settings.redis.key_prefix}")
    Worker(settings, options).run(until_caught_up=True)
    before = distinct_on_topic(settings)
    assert before

    with running_api(settings) as url:
        first = Listener(url)
        replay_simulated(settings, tmp_path, CUTOFF + timedelta(days=20))
        Worker(settings, options).run(until_caught_up=True)
        every = [
            SegmentChange.model_validate_json(r.value)
            for r in read_to_end(settings.kafka, settings.topics.segment_changes)
        ]
        new = {(c.customer_id, c.sequence) for c in every} - before
        assert len(new) > 20
        repeat = next(c for c in every if (c.customer_id, c.sequence) in new)
        publish(settings, settings.topics.segment_changes, [(repeat.customer_id, repeat)])

        received = first.take(len(new))  # the repeat (sent as after a crash) is not among them
        first.close()
        assert sorted(keyed(received)) == sorted(new), "each new change once, no earlier one, the repeat dropped"

        middle = len(received) // 2
        second = Listener(url, last_event_id=received[middle][0])
        resumed = second.take(len(received) - middle - 1)
        second.close()
        assert sorted(keyed(resumed)) == sorted(keyed(received[middle + 1 :])), "exactly what followed that event"


def test_a_resume_from_before_the_buffer_reads_the_topic_again_and_loses_nothing(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bootstrap_simulated(settings, redis_client, tmp_path, stream_days=40)
    replay_simulated(settings, tmp_path, CUTOFF)
    Worker(settings, WorkerSettings(group_id=f"g-{settings.redis.key_prefix}")).run(until_caught_up=True)
    every = [
        SegmentChange.model_validate_json(r.value) for r in read_to_end(settings.kafka, settings.topics.segment_changes)
    ]
    publish(settings, settings.topics.segment_changes, [(every[0].customer_id, every[0])])
    distinct = {(c.customer_id, c.sequence) for c in every}
    assert len(distinct) > 60, "more changes than the buffer holds"

    with running_api(settings, change_buffer=20) as url:
        start = ",".join(f"{p}:0" for p in range(settings.topics.partitions))
        listener = Listener(url, last_event_id=start)
        received = listener.take(len(distinct))
        listener.close()
    assert sorted(keyed(received)) == sorted(distinct)
