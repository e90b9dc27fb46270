"""A broker that stalls for longer than the delivery timeout never hangs the replay.

The broker process is SIGSTOPped mid-replay (it keeps its sockets and answers
nothing) for longer than SEG_KAFKA__DELIVERY_TIMEOUT_MS. After SIGCONT the replay
finishes with every row on the topic; repeats are only of messages at or after
a point where the replay said it resent from (its acknowledged prefix then). A
SIGTERM during the stall ends the process within seconds with its checkpoint
saved, and a rerun completes the topic.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from rig.local_services import TansuBroker
from shared.exceptions import DeliveryError
from shared.kafka_clients import Outgoing, close_producer, deliver, make_producer
from shared.settings import KafkaSettings, Settings, isolated_settings
from tests.test_producer_replay import cli_env, consume_all, message_count, run_cli, seq_of, start_cli, write_rows

ROWS = 30_000
SPEED = 3_000  # event-seconds per wall second: rows are one event-second apart, so ~10 s of replay
STALL_S = 7.0  # longer than delivery (3 s) + request (1 s) timeouts


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    """A broker of this test's own: pausing the session's broker would stall every other test."""
    with TansuBroker() as own:
        yield own


@pytest.fixture
def stall_settings(broker: TansuBroker, redis_url: str) -> Settings:
    return isolated_settings(broker.bootstrap_servers, redis_url, "stall")


def stall_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return cli_env(settings, tmp_path) | {
        "SEG_KAFKA__REQUEST_TIMEOUT_MS": "1000",
        "SEG_KAFKA__DELIVERY_TIMEOUT_MS": "3000",
        "SEG_PRODUCER_MAX_UNACKNOWLEDGED": "3000",
        "SEG_PRODUCER_RETRY_INITIAL_S": "0.5",
        "SEG_PRODUCER_RETRY_MAX_S": "2",
        "SEG_PRODUCER_STOP_FLUSH_S": "2",
        "SEG_PRODUCER_CHECKPOINT_INTERVAL_S": "0.2",
    }


def seconds_file(tmp_path: Path) -> Path:
    """ROWS invoice lines one event-second apart, 500 customers."""
    start = datetime(2011, 3, 1, 8)
    rows = [f"6{i:05d},S{i % 50},D,1,{start + timedelta(seconds=i)},2.0,{10_000 + i % 500},UK" for i in range(ROWS)]
    return write_rows(tmp_path / "seconds.csv", rows)


def start_replay(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return start_cli("replay", str(path), "--speed", str(SPEED), "--quiet", env=env)


def stall_mid_replay(broker: TansuBroker, settings: Settings, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while message_count(settings.kafka, settings.topics.invoices) < ROWS // 5:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the replay never got going"
        time.sleep(0.1)
    broker.pause()


def checkpoint_state(tmp_path: Path) -> dict:
    [path] = (tmp_path / "checkpoints").glob("replay-*.json")
    return json.loads(path.read_text())


def assert_every_row_once_but_after(settings: Settings, resend_points: list[int]) -> Counter[int]:
    """All ROWS sequence numbers are on the topic; a repeat only at or after the first resend point."""
    seqs = Counter(seq_of(record) for record in consume_all(settings.kafka, settings.topics.invoices))
    assert set(seqs) == set(range(ROWS))
    repeated = sorted(seq for seq, n in seqs.items() if n > 1)
    assert all(n <= 2 for n in seqs.values())
    assert not repeated or (resend_points and repeated[0] >= min(resend_points)), (repeated[:5], resend_points)
    return seqs


def test_a_stall_longer_than_the_delivery_timeout_is_waited_out_and_every_row_arrives(
    broker: TansuBroker, stall_settings: Settings, tmp_path: Path
) -> None:
    process = start_replay(seconds_file(tmp_path), stall_env(stall_settings, tmp_path))
    stall_mid_replay(broker, stall_settings, process)
    time.sleep(STALL_S)
    assert process.poll() is None, "the replay gave up during the stall"
    broker.resume()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    match = re.search(r"resent after broker outages from messages \[([\d, ]+)\]", stdout)
    assert match, stdout
    resend_points = [int(n) for n in match.group(1).split(",")]
    assert "resending from message" in stderr and "Traceback" not in stderr
    assert_every_row_once_but_after(stall_settings, resend_points)
    state = checkpoint_state(tmp_path)
    assert state["complete"] is True and state["acked"] == ROWS


@pytest.mark.parametrize("after_s", [1.5, 5.0], ids=["before-the-delivery-timeout", "while-retrying"])
def test_sigterm_during_a_stall_exits_within_seconds_with_the_checkpoint_saved(
    broker: TansuBroker, stall_settings: Settings, tmp_path: Path, after_s: float
) -> None:
    path = seconds_file(tmp_path)
    env = stall_env(stall_settings, tmp_path)
    process = start_replay(path, env)
    stall_mid_replay(broker, stall_settings, process)
    time.sleep(after_s)
    asked = time.monotonic()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    took = time.monotonic() - asked
    assert process.returncode == 143, stderr
    assert took < 8, f"SIGTERM answered after {took:.1f} s"
    assert "replay interrupted" in stdout and "Traceback" not in stderr
    state = checkpoint_state(tmp_path)
    assert state["complete"] is False and 0 < state["acked"] < ROWS

    broker.resume()
    on_topic = {seq_of(record) for record in consume_all(stall_settings.kafka, stall_settings.topics.invoices)}
    assert on_topic >= set(range(state["acked"]))  # nothing was checkpointed that the broker does not have
    rerun = run_cli("replay", str(path), "--quiet", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped by resume {state['acked']}," in rerun.stdout
    assert_every_row_once_but_after(stall_settings, [state["acked"]])


def test_deliver_returns_every_ack_or_raises_within_its_bound(broker: TansuBroker) -> None:
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=1000, delivery_timeout_ms=3000)
    producer = make_producer(kafka)
    try:
        records = [Outgoing("bounded", value=str(i).encode(), key=str(i % 3).encode()) for i in range(100)]
        acked = deliver(producer, records, timeout_s=30)
        assert len(acked) == 100
        by_partition: dict[int, list[int]] = {}
        for metadata in acked:
            by_partition.setdefault(metadata.partition, []).append(metadata.offset)
        assert all(offsets == sorted(offsets) for offsets in by_partition.values())

        broker.pause()
        started = time.monotonic()
        with pytest.raises(DeliveryError) as late:
            deliver(producer, records[:10], timeout_s=2)
        assert late.value.acknowledged == 0 and time.monotonic() - started < 4
    finally:
        started = time.monotonic()
        close_producer(producer, 1.0)
        closing = time.monotonic() - started
        broker.resume()
    assert closing < 5
