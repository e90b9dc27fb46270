"""The pipeline the integration tests run, written once: bootstrap → replay → worker → read back.

Two datasets: the real year (``REAL_CUTOFF``: bootstrap on what comes before,
stream the rest) and a small simulated history (``SIM_CUTOFF``), for tests that
need a stream but not the real data's size.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import TopicPartition

from producer.replay import ReplayOptions, replay
from producer.simulate.simulation import SimulationConfig, simulate
from shared.kafka_clients import make_consumer, read_to_end
from shared.settings import Settings, as_environment
from shared.state.customer_record import CustomerRecord
from shared.state.keys import Keys
from worker.bootstrap.pipeline import BootstrapResult, run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.stream.loop import Worker
from worker.stream.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
REAL_CUTOFF = datetime(2011, 6, 1)
SIM_START = datetime(2010, 12, 1)
SIM_DAYS = 120
SIM_CUTOFF = SIM_START + timedelta(days=SIM_DAYS)


def bootstrap(
    settings: Settings, client: redis.Redis, source: Path, cutoff: datetime, tmp_path: Path, k: int = 6
) -> BootstrapResult:
    """Bootstrap ``source`` before ``cutoff`` into this test's prefix, laid out for its topic's partitions."""
    options = BootstrapSettings(k=k, model_file=tmp_path / "model.json")
    keys = Keys(settings.redis.key_prefix)
    return run_bootstrap(source, cutoff, client, keys, options, partitions=settings.topics.partitions)


def replay_file(
    settings: Settings, source: Path, start: datetime, tmp_path: Path, end: datetime | None = None, **options: Any
) -> int:
    """Replay ``source`` from ``start`` to ``end`` (default: all) into the invoices topic; the lines sent."""
    checkpoint = (
        tmp_path / f"replay-{start:%Y%m%d}-{end:%Y%m%d}.json" if end else tmp_path / f"replay-{start:%Y%m%d}.json"
    )
    return replay(source, settings, ReplayOptions(start=start, end=end, checkpoint=checkpoint, **options)).sent


def simulated(tmp_path: Path, stream_days: int = 0, customers: int = 300, seed: int = 11) -> Path:
    """A simulated history up to ``SIM_CUTOFF``, plus ``stream_days`` more days to stream."""
    out = tmp_path / "sim.csv"
    if not out.exists():
        simulate(SimulationConfig(out=out, customers=customers, days=SIM_DAYS + stream_days, seed=seed))
    return out


def prepare_real(settings: Settings, client: redis.Redis, dataset: Path, tmp_path: Path, **replay: Any) -> int:
    """The real year: bootstrap before ``REAL_CUTOFF`` and replay the rest; the lines sent."""
    bootstrap(settings, client, dataset, REAL_CUTOFF, tmp_path)
    return replay_file(settings, dataset, REAL_CUTOFF, tmp_path, **replay)


def prepare_simulated(settings: Settings, client: redis.Redis, tmp_path: Path, stream_days: int, k: int = 4) -> int:
    """A small simulated history bootstrapped, and ``stream_days`` days after it replayed; the lines sent."""
    source = simulated(tmp_path, stream_days)
    bootstrap(settings, client, source, SIM_CUTOFF, tmp_path, k=k)
    return replay_file(settings, source, SIM_CUTOFF, tmp_path)


def worker_options(settings: Settings, **options: Any) -> WorkerSettings:
    """Worker settings with a group of the test's own (fast retries for outage tests are passed in)."""
    return WorkerSettings(**({"group_id": f"g-{settings.redis.key_prefix}"} | options))


def run_worker(settings: Settings, **options: Any) -> Worker:
    """One worker in this process, until every partition is applied to its end."""
    worker = Worker(settings, worker_options(settings, **options))
    worker.run(until_caught_up=True)
    return worker


def worker_process(
    settings: Settings, group: str, log: Path | None = None, until_caught_up: bool = True, **environment: str
) -> subprocess.Popen[bytes]:
    """``python -m worker run [--until-caught-up]`` as deployed, with extra ``SEG_WORKER_*`` variables.

    Its log goes to ``log`` when given (read it when the process fails), else nowhere.
    """
    env = os.environ | as_environment(settings) | {f"SEG_WORKER_{k.upper()}": v for k, v in environment.items()}
    sink = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - the child owns it
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--group", group] + (["--until-caught-up"] if until_caught_up else []),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sink,
    )
    _STARTED.append(process)
    return process


_STARTED: list[subprocess.Popen[bytes]] = []


def kill_leftover_workers() -> None:
    """Kill the worker processes a test started and left running (it failed, or timed out waiting):
    a stuck worker would otherwise keep fetching and writing through the tests after it."""
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


def applied(client: redis.Redis, keys: Keys, partitions: int) -> int:
    """Records applied so far, over all partitions (the checkpoints' offsets)."""
    pipe = client.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.hget(keys.checkpoint(partition), "offset")
    return sum(int(offset) for offset in pipe.execute() if offset)


@contextmanager
def kafka_committed(settings: Settings, group: str) -> Iterator[Callable[[], int]]:
    """A probe of the offsets ``group`` committed to Kafka, summed over the invoice topic's partitions.

    Comparable with :func:`applied`: both count the next offset to read.
    """
    consumer = make_consumer(settings.kafka, group_id=group)
    partitions = [TopicPartition(settings.topics.invoices, p) for p in range(settings.topics.partitions)]
    try:
        yield lambda: sum(consumer.committed(tp) or 0 for tp in partitions)
    finally:
        consumer.close()


def records(client: redis.Redis, keys: Keys, partitions: int) -> dict[str, CustomerRecord]:
    """Every stored customer record, by customer id."""
    out = {}
    for partition in range(partitions):
        ids = sorted(client.smembers(keys.customers(partition)))
        pipe = client.pipeline(transaction=False)
        for cid in ids:
            pipe.hgetall(keys.customer(partition, cid))
        for cid, fields in zip(ids, pipe.execute(), strict=True):
            out[cid] = CustomerRecord.from_fields(cid, fields)
    return out


def changes_by_customer(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    """The segment-change topic per customer, in sequence order, repeats dropped."""
    events: dict[str, dict[int, dict[str, Any]]] = {}
    for record in read_to_end(settings.kafka, settings.topics.segment_changes):
        event = orjson.loads(record.value)
        events.setdefault(event["customer_id"], {})[event["sequence"]] = event
    return {cid: [by_sequence[s] for s in sorted(by_sequence)] for cid, by_sequence in events.items()}
