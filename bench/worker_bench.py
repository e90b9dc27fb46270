"""Worker figures on the real data: speed against a peer and a raw consume loop, memory, and clustering quality.

Bootstrap up to the cutoff, replay the rest into a fresh topic, then in one run:

* the worker's end-to-end rows/s (first poll until lag is zero), run as
  ``python -m worker run`` in a child process so its peak RSS (VmHWM, with its
  fetcher process's) is its own; beside it, over the same topic, the same
  per-customer fold as a Quix Streams app (:mod:`bench.quix_peer`, RocksDB state
  with a changelog topic, at-least-once; its own child process and virtualenv;
  goal worker/quix >= 2) and a raw kafka-python consume loop (goal worker/raw >= 0.8),
  in :data:`SPEED_ROUNDS` rounds taken in turns, judged on the median ratio;
  the peer's aggregates for a few customers are checked against pandas;
* SSQ ratio and ARI of the streaming segments against a batch k-means
  (k-means++, 10 restarts) on the same final feature vectors (goals <= 1.02, >= 0.95);
* published segment changes per customer and the flip-flop share (A→B→A within
  7 event-days; goal < 5% of changes);
* determinism: the same topic read again into fresh state by one worker with
  batches of 500 records, and by three worker processes in one group; the Redis
  state key by key and the segment changes (repeats dropped) byte for byte must
  equal the first run's (goal: 0 differences).

Run only this part with ``python -m bench.worker_bench`` (starts a local broker and Redis).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import numpy as np
from kafka import TopicPartition
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from bench import peer_check
from harness.compare import differences, state, unique_changes
from producer.replay import ReplayOptions, replay
from shared.features.scaling import transform_matrix
from shared.kafka_clients import make_consumer, read_to_end
from shared.redis_client import make_redis
from shared.settings import Settings, as_environment, isolated_settings
from shared.state.keys import Keys
from shared.state.layout import stream_clock
from shared.state.model_stats import live_stats
from shared.state.model_store import load_current
from worker.bootstrap.pipeline import run_bootstrap
from worker.bootstrap.settings import BootstrapSettings
from worker.refresh.refit import current_features

CUTOFF = datetime(2011, 6, 1)
ROOT = Path(__file__).resolve().parents[1]
SPEED_ROUNDS = 3
"""Rounds of the three rates, in turns on the same topic. One run's rates moved by 10-15% from run to
run on this machine; the goals are judged on the median of each round's own ratio (paired, so a round
the whole machine ran slower in counts as one)."""
# The Quix peer's interpreter: its own virtualenv, because Quix Streams pins pydantic below ours.
QUIX_PYTHON = Path(os.environ.get("SEG_BENCH_QUIX_PYTHON", ROOT / ".venv-quix" / "bin" / "python"))


def require_peer() -> None:
    """Fail before any work when the Quix peer's virtualenv is missing."""
    if not QUIX_PYTHON.exists():
        raise SystemExit(
            f"the Quix peer's virtualenv is missing ({QUIX_PYTHON}): run `make bench-env`, "
            "or point SEG_BENCH_QUIX_PYTHON at a Python with bench/requirements-quix.txt installed"
        )


WORKER = [sys.executable, "-m", "worker", "run", "--until-caught-up", "--group"]


def _worker_rate(settings: Settings) -> tuple[float, float, float]:
    """Records/s from the first poll until caught up, records, and the worker's peak RSS in MB.

    The worker runs as ``python -m worker run`` in a child process, exactly as deployed.
    """
    summary, peak_mb = _run_child([*WORKER, f"bench-{uuid.uuid4().hex}"], os.environ | as_environment(settings))
    return summary["records_per_s"], float(summary["records"]), peak_mb


def _fresh(settings: Settings, dataset: Path, workdir: Path, label: str) -> Settings:
    """Settings for reading the same invoices topic again into fresh state: its own Redis prefix and output topics."""
    fresh = isolated_settings(settings.kafka.bootstrap_servers, settings.redis.url, label)
    fresh = fresh.model_copy(update={"topics": fresh.topics.model_copy(update={"invoices": settings.topics.invoices})})
    bootstrap(fresh, dataset, workdir / label)
    return fresh


def _rerun(settings: Settings, dataset: Path, workdir: Path, label: str, workers: int, batch: int) -> Settings:
    """The same invoices topic read again into fresh state, by ``workers`` worker processes in one group."""
    fresh = _fresh(settings, dataset, workdir, label)
    env = os.environ | as_environment(fresh) | {"SEG_WORKER_BATCH_MAX_RECORDS": str(batch)}
    group = f"bench-{uuid.uuid4().hex}"
    logs = [workdir / label / f"worker{n}.log" for n in range(workers)]
    children = []
    for log in logs:
        with log.open("wb") as sink:
            children.append(subprocess.Popen([*WORKER, group], env=env, cwd=ROOT, stdout=sink, stderr=sink))
    codes = [child.wait() for child in children]
    for code, log in zip(codes, logs, strict=True):
        if code != 0:
            tail = "\n".join(log.read_text().splitlines()[-15:])
            raise RuntimeError(f"a worker of the {label} run exited with {code}:\n{tail}")
    return fresh


def _determinism(settings: Settings, dataset: Path, workdir: Path) -> dict[str, float]:
    """Differences from the first run (state keys, customers whose published changes differ) of two reruns."""
    partitions = settings.topics.partitions
    client = make_redis(settings.redis)
    first = state(client, Keys(settings.redis.key_prefix), partitions)
    changes = unique_changes(settings)
    out = {"changes_compared": float(sum(len(events) for events in changes.values()))}
    for label, workers, batch in (("batch500", 1, 500), ("three", 3, 20_000)):
        fresh = _rerun(settings, dataset, workdir, label, workers, batch)
        other = state(client, Keys(fresh.redis.key_prefix), partitions)
        out[f"{label}_state_differences"] = float(
            len(differences(first, other, settings.redis.key_prefix, fresh.redis.key_prefix))
        )
        theirs = unique_changes(fresh)
        out[f"{label}_change_differences"] = float(
            sum(changes.get(c) != theirs.get(c) for c in changes.keys() | theirs.keys())
        )
    return out


def bootstrap(settings: Settings, dataset: Path, workdir: Path) -> None:
    """The benchmarks' starting state: the bootstrap up to CUTOFF with k = 6, under ``settings``' keys."""
    workdir.mkdir(parents=True, exist_ok=True)
    options = BootstrapSettings(k=6, model_file=workdir / "model.json")
    client = make_redis(settings.redis)
    run_bootstrap(
        dataset, CUTOFF, client, Keys(settings.redis.key_prefix), options, partitions=settings.topics.partitions
    )


def _quix_rate(settings: Settings, records: int, sample: list[str]) -> tuple[dict, float]:
    """The Quix peer's summary (rate, per-customer aggregates of ``sample``) and its peak RSS in MB."""
    kafka = settings.kafka
    consumer_config = {
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
    }
    command = [
        str(QUIX_PYTHON),
        "-m",
        "bench.quix_peer",
        "--broker",
        kafka.bootstrap_servers,
        "--topic",
        settings.topics.invoices,
        "--records",
        str(records),
        "--consumer-config",
        json.dumps(consumer_config),
        *itertools.chain.from_iterable(("--sample", customer) for customer in sample),
    ]
    return _run_child(command, dict(os.environ))


def _run_child(command: list[str], env: dict[str, str]) -> tuple[dict, float]:
    """Run a benchmark child to its end; its last stdout line (JSON) and its peak RSS in MB."""
    child = run_measured(command, env)
    return json.loads(child.last_line), child.peak_mb


@dataclass(frozen=True)
class Child:
    """A finished child process: its last stdout line, wall time and peak RSS (with its children) in MB."""

    last_line: str
    seconds: float
    peak_mb: float


def run_measured(command: list[str], env: dict[str, str]) -> Child:
    """Run ``command`` to its end, sampling its peak RSS; fail with its stderr's tail.

    The peak is the sum of the child's and its descendants' (the worker's fetcher),
    each read from its ``/proc`` status while it runs (peaks added: an upper bound).
    """
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=ROOT)
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            time.sleep(0.2)
        if process.returncode != 0:
            err.seek(0)
            tail = "\n".join(err.read().strip().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(command[:4])} exited with {process.returncode}:\n{tail}")
        out.seek(0)
        lines = out.read().strip().splitlines()
        return Child(lines[-1] if lines else "", time.perf_counter() - started, peak_kb / 1024)


def _high_water_kb(pid: int) -> int:
    """Peak resident set (VmHWM) so far of the process and its descendants (the fetcher); 0 once gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0
    own = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return own + sum(_high_water_kb(int(child)) for child in children)


def raw_consume_rate(settings: Settings, topic: str) -> float:
    """Records/s of a bare kafka-python consume loop over ``topic``, from the first record: the speed baseline."""
    consumer = make_consumer(settings.kafka, group_id=None, max_poll_records=5_000)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    total, started = 0, None
    while any(consumer.position(tp) < end for tp, end in ends.items()):
        for records in consumer.poll(timeout_ms=1000).values():
            started = started or time.monotonic()
            total += len(records)
    elapsed = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return total / elapsed


def _quality(settings: Settings) -> dict[str, float]:
    client = make_redis(settings.redis)
    keys = Keys(settings.redis.key_prefix)
    snapshot = load_current(client, keys)
    assert snapshot is not None
    as_of = stream_clock(client, keys)
    assert as_of is not None
    rows = current_features(client, keys, as_of).to_numpy()
    vectors = transform_matrix(rows, snapshot.transform)
    stats = live_stats(client, keys, snapshot)
    centroids = stats.centroids(np.array([s.centroid for s in snapshot.segments]))[stats.counts > 0]
    streaming = ((vectors[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    batch = KMeans(n_clusters=len(centroids), init="k-means++", n_init=10, random_state=0).fit(vectors)
    # Lloyd's algorithm run to convergence from the streaming centroids: how much of
    # the gap is convergence (the stream could still close it) and how much is the
    # local optimum the stream started in (only a refit closes that).
    settled = KMeans(n_clusters=len(centroids), init=centroids, n_init=1).fit(vectors)
    return {
        "ssq_ratio": float(streaming.min(axis=1).sum() / batch.inertia_),
        "ssq_ratio_settled": float(settled.inertia_ / batch.inertia_),
        "ari": float(adjusted_rand_score(batch.labels_, streaming.argmin(axis=1))),
        "customers_scored": float(len(rows)),
    }


def _changes(settings: Settings) -> dict[str, float]:
    by_customer: dict[str, dict[int, dict]] = defaultdict(dict)
    for record in read_to_end(settings.kafka, settings.topics.segment_changes):
        event = json.loads(record.value)
        by_customer[event["customer_id"]][event["sequence"]] = event
    moves = flips = 0
    for events in by_customer.values():
        ordered = [events[s] for s in sorted(events) if events[s]["previous"] is not None]
        moves += len(ordered)
        for first, second in itertools.pairwise(ordered):
            went_back = second["current"]["id"] == first["previous"]["id"]
            gap = datetime.fromisoformat(second["event_time"]) - datetime.fromisoformat(first["event_time"])
            flips += went_back and gap <= timedelta(days=7)
    return {
        "changes_per_customer": sum(len(e) for e in by_customer.values()) / max(len(by_customer), 1),
        "moves": float(moves),
        "flip_flop_share": flips / max(moves, 1),
    }


class Rates(NamedTuple):
    """One round of the speed figures, rows/s each, taken in turns on the same topic."""

    worker: float
    quix: float
    raw: float


def _rounds(first: Rates, settings: Settings, dataset: Path, workdir: Path, records: int) -> list[Rates]:
    """``first`` and :data:`SPEED_ROUNDS` - 1 more rounds, each worker run into fresh state."""
    rounds = [first]
    for n in range(1, SPEED_ROUNDS):
        fresh = _fresh(settings, dataset, workdir, f"speed{n}")
        worker, _, _ = _worker_rate(fresh)
        quix, _ = _quix_rate(settings, records, [])
        rounds.append(Rates(worker, quix["records_per_s"], raw_consume_rate(settings, settings.topics.invoices)))
    return rounds


def run(settings: Settings, dataset: Path) -> dict[str, float]:
    """All worker figures on ``dataset``; ``settings`` must point at a fresh key prefix and topics."""
    require_peer()
    with tempfile.TemporaryDirectory(prefix="worker-bench-") as tmp:
        workdir = Path(tmp)
        bootstrap(settings, dataset, workdir)
        sent = replay(dataset, settings, ReplayOptions(start=CUTOFF, checkpoint=workdir / "replay.json")).sent
        expected = peer_check.reference(dataset, CUTOFF)
        rate, records, peak_mb = _worker_rate(settings)
        same = _determinism(settings, dataset, workdir)
        quix, quix_peak_mb = _quix_rate(settings, sent, list(expected))
        first = Rates(rate, quix["records_per_s"], raw_consume_rate(settings, settings.topics.invoices))
        rounds = _rounds(first, settings, dataset, workdir, sent)
    result = {
        "records": records,
        "worker_rows_per_s": statistics.median(r.worker for r in rounds),
        "quix_rows_per_s": statistics.median(r.quix for r in rounds),
        "raw_consume_rows_per_s": statistics.median(r.raw for r in rounds),
        "worker_quix_ratio": statistics.median(r.worker / r.quix for r in rounds),
        "ratio": statistics.median(r.worker / r.raw for r in rounds),
        "worker_peak_rss_mb": peak_mb,
        "quix_peak_rss_mb": quix_peak_mb,
    }
    mismatches = peer_check.differences(expected, quix["sample"])
    result |= _quality(settings) | _changes(settings) | same
    print(
        "".join(
            f"round {n}: worker {r.worker:,.0f} rows/s | quix {r.quix:,.0f} rows/s | raw consume {r.raw:,.0f} "
            f"rows/s | worker/quix {r.worker / r.quix:.2f} | worker/raw {r.worker / r.raw:.2f}\n"
            for n, r in enumerate(rounds, 1)
        )
        + f"median of {len(rounds)} rounds: worker {result['worker_rows_per_s']:,.0f} rows/s | quix "
        f"{result['quix_rows_per_s']:,.0f} rows/s | raw consume {result['raw_consume_rows_per_s']:,.0f} rows/s | "
        f"worker/quix {result['worker_quix_ratio']:.2f} (goal >= 2) | worker/raw {result['ratio']:.2f} (goal >= 0.8)\n"
        f"  {records:,.0f} records; peak RSS worker {peak_mb:.0f} MB (goal < 300), quix {quix_peak_mb:.0f} MB\n"
        f"  quix fold vs pandas: {len(expected) - len(mismatches)} of {len(expected)} customers equal "
        f"({', '.join(expected)}) in {', '.join(peer_check.FIELDS)}"
        + "".join(f"\n  MISMATCH customer {customer}: {'; '.join(what)}" for customer, what in mismatches.items())
        + "\n"
        f"quality: SSQ ratio {result['ssq_ratio']:.4f} (goal <= 1.02), ARI {result['ari']:.3f} (goal >= 0.95) "
        f"over {result['customers_scored']:,.0f} customers; Lloyd from the streaming centroids settles at "
        f"SSQ ratio {result['ssq_ratio_settled']:.4f}\n"
        f"changes: {result['changes_per_customer']:.2f} per customer, {result['moves']:,.0f} moves, "
        f"flip-flops {100 * result['flip_flop_share']:.2f}% (goal < 5%)\n"
        f"determinism: {same['changes_compared']:,.0f} changes compared; batches of 500 instead of 20,000: "
        f"{same['batch500_state_differences']:.0f} state keys and {same['batch500_change_differences']:.0f} "
        f"customers' changes differ; three workers instead of one: {same['three_state_differences']:.0f} and "
        f"{same['three_change_differences']:.0f} (goal 0)"
    )
    return result


def main() -> None:
    """Only the worker part of ``make bench``, on a local broker and Redis."""
    from rig.local_services import RedisServer, TansuBroker

    dataset = Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz"))
    if not dataset.exists():
        raise SystemExit(f"the benchmark needs the real dataset: set SEG_DATASET (looked at {dataset})")
    with TansuBroker() as broker, RedisServer(appendonly=False) as redis_server:
        run(isolated_settings(broker.bootstrap_servers, redis_server.url, "bench"), dataset)


if __name__ == "__main__":
    main()
