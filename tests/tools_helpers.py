"""Shared by the tools, metrics, report and refresh tests: seeded state, a stream after it, published events,
in-process commands."""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Container, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import redis
from pydantic import BaseModel

from shared.contracts.drift_alert import DriftAlert, EventWindow
from shared.contracts.model_snapshot import ModelSnapshot
from shared.contracts.segment_change import SegmentChange, SegmentRef
from shared.kafka_clients import ensure_topics, make_producer
from shared.partitioner import partition_of
from shared.settings import Settings
from shared.state.keys import Keys
from shared.state.layout import partition_count
from shared.state.model_stats import AS_OF_FIELD, VERSION_FIELD, Statistics
from tests.pipeline import SIM_CUTOFF, SIM_START, bootstrap, replay_file, run_worker, simulated
from worker.bootstrap.pipeline import BootstrapResult
from worker.cli import build_parser
from worker.stream.loop import Worker

START, CUTOFF = SIM_START, SIM_CUTOFF


def bootstrap_simulated(
    settings: Settings, client: redis.Redis, tmp_path: Path, k: int = 4, stream_days: int = 0
) -> BootstrapResult:
    """A small simulated history bootstrapped into this test's Redis prefix up to ``CUTOFF``.

    ``stream_days`` more days are simulated into the same file, for :func:`replay_simulated`.
    """
    return bootstrap(settings, client, simulated(tmp_path, stream_days), CUTOFF, tmp_path, k=k)


def replay_simulated(settings: Settings, tmp_path: Path, start: datetime, end: datetime | None = None) -> int:
    """Replay the simulated lines from ``start`` to ``end`` (default: all) to the invoices topic; the number sent."""
    return replay_file(settings, tmp_path / "sim.csv", start, tmp_path, end)


def stream_simulated(settings: Settings, tmp_path: Path) -> Worker:
    """Replay the simulated days after the cutoff and let one worker apply them all; returns the worker."""
    replay_simulated(settings, tmp_path, CUTOFF)
    return run_worker(settings)


def publish(settings: Settings, topic: str, events: Iterable[tuple[str, BaseModel]]) -> None:
    """Send (key, event) pairs as the worker and producer do: key = customer or monitor, value = contract JSON."""
    ensure_topics(settings.kafka, [topic], settings.topics.partitions, 1)
    producer = make_producer(settings.kafka)
    try:
        for key, event in events:
            producer.send(topic, key=key.encode(), value=event.model_dump_json().encode())
        producer.flush()
    finally:
        producer.close()


def change(customer: str, sequence: int, previous: tuple[int, str] | None, current: tuple[int, str]) -> SegmentChange:
    return SegmentChange(
        customer_id=customer,
        previous=SegmentRef(id=previous[0], name=previous[1]) if previous else None,
        current=SegmentRef(id=current[0], name=current[1]),
        model_version=1,
        event_time=START + timedelta(days=sequence),
        reason="first_purchase" if previous is None else "purchase",
        features={"frequency": float(sequence)},
        distance_margin=0.5,
        sequence=sequence,
    )


def alert(alert_id: str, monitor: str, state: str = "open") -> DriftAlert:
    return DriftAlert(
        alert_id=alert_id,
        incident_id=f"inc-{monitor}",
        state=state,
        severity="warning",
        monitor=monitor,
        method="psi",
        statistic="avg_order_value",
        value=0.31,
        threshold=0.2,
        threshold_source="calibrated on the reference period",
        window=EventWindow(start=START, end=START + timedelta(days=7), events=1200, customers=300),
        reference_period=(START - timedelta(days=90), START),
        model_version=1,
        suggested_action="check prices",
    )


def customer_key(client: redis.Redis, keys: Keys, customer_id: str) -> str:
    """The key of the customer's record, in the partition the bootstrap laid it out in (for tests that edit it)."""
    return keys.customer(partition_of(customer_id, partition_count(client, keys)), customer_id)


def top_units(units: Mapping[str, int], n: int, exclude: Container[str] = ()) -> list[tuple[str, int]]:
    """The tests' own ranking: the ``n`` stock codes with the most positive net units not in ``exclude``, ties to
    the higher stock code (the rule the tools, the API and the report promise)."""
    kept = [(code, count) for code, count in units.items() if count > 0 and code not in exclude]
    return sorted(kept, key=lambda item: (item[1], item[0]), reverse=True)[:n]


def swept_statistics(client: redis.Redis, keys: Keys, snapshot: ModelSnapshot, partitions: int) -> Statistics:
    """Every partition's statistics added up, each written by one worker's last daily sweep under ``snapshot``."""
    ids, dimensions = [segment.id for segment in snapshot.segments], len(snapshot.feature_names)
    total = Statistics.empty(len(ids), dimensions)
    swept = set()
    for partition in range(partitions):
        raw = client.hgetall(keys.stats(partition))
        assert raw.get(VERSION_FIELD) == str(snapshot.version), partition
        swept.add(raw[AS_OF_FIELD])
        total = total + Statistics.from_mapping(raw, ids, dimensions)
    assert len(swept) == 1, f"one worker swept every partition at the same midnight: {swept}"
    return total


def run_tool(settings: Settings, argv: list[str]) -> tuple[int, str]:
    """Parse ``argv`` with the worker CLI and run the tool in-process against ``settings``; (code, stdout)."""
    args = build_parser().parse_args(argv)
    tool = importlib.import_module(f"worker.tools.{argv[0]}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = tool.run(settings, args)
    return code, out.getvalue()
