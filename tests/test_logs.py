"""Logs a new user can trust: kafka-python's reconnect noise folded into one message of ours."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from rig.local_services import free_port
from shared.exceptions import ServiceUnavailableError
from shared.kafka_clients import make_consumer
from shared.logs import FOLDED_LOGGER, JsonFormatter, KafkaNoise, configure_logging, quiet_kafka_internals
from shared.settings import KafkaSettings


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """configure_logging replaces the root's handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def kafka_record(name: str, text: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, text, (), None)


def test_a_broker_that_is_down_gives_one_clear_message_not_dozens(
    restored_logging: None, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging()
    closed = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(ServiceUnavailableError):
        make_consumer(closed, None, bootstrap_timeout_ms=3_000)  # kafka-python retries 4-5 times meanwhile
    lines = capfd.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert f"WARNING {FOLDED_LOGGER}: Kafka broker not reachable" in lines[0]
    assert "SEG_KAFKA__BOOTSTRAP_SERVERS" in lines[0]


def test_while_the_outage_lasts_a_count_follows_once_per_interval() -> None:
    noise = KafkaNoise(interval_s=0.0)
    first = kafka_record("kafka.net.manager", "Connection failed: KafkaConnectionError: 111 ECONNREFUSED")
    assert noise.filter(first) and first.levelname == "WARNING"
    noise.interval_s = 3600.0
    folded = [kafka_record("kafka.net.manager", "Bootstrap bootstrap-0 not ready; waiting 0.46 secs")] * 5
    assert not any(noise.filter(record) for record in folded)
    noise.interval_s = 0.0
    again = kafka_record("kafka.net.connection", "<KafkaConnection node_id=1>: Connection lost")
    assert noise.filter(again) and "5 more connection messages" in again.getMessage()


def test_a_cancelled_request_at_shutdown_is_dropped() -> None:
    assert not KafkaNoise().filter(kafka_record("kafka.cluster", "Metadata refresh: failed Cancelled"))


def test_other_kafka_warnings_and_our_own_messages_pass_unchanged() -> None:
    noise = KafkaNoise()
    other = kafka_record("kafka.coordinator", "Offset commit failed: the group is rebalancing", logging.WARNING)
    ours = kafka_record("worker.stream", "partition 3 fenced: another worker owns it now", logging.WARNING)
    assert noise.filter(other) and other.name == "kafka.coordinator"
    assert noise.filter(ours) and ours.getMessage().startswith("partition 3 fenced")


def test_quieting_twice_installs_one_filter_per_handler(restored_logging: None) -> None:
    configure_logging("json")
    quiet_kafka_internals()
    [handler] = logging.getLogger().handlers
    assert sum(isinstance(f, KafkaNoise) for f in handler.filters) == 1
    assert isinstance(handler.formatter, JsonFormatter)
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.WARNING


def test_json_lines_carry_the_extra_fields() -> None:
    record = kafka_record("worker.stream", "dead letter", logging.WARNING)
    record.partition, record.offset = 2, 41
    entry = json.loads(JsonFormatter().format(record))
    assert entry | {"time": None} == {
        "time": None,
        "level": "WARNING",
        "logger": "worker.stream",
        "message": "dead letter",
        "partition": 2,
        "offset": 41,
    }
