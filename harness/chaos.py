"""``make chaos``: every fault of the hardening issue on the real data, each compared with a calm run; one table.

The real year is bootstrapped up to 2011-06-01 and the three months after it are
streamed (about 112,000 lines), by worker processes as deployed (``python -m worker
run``), against a real Tansu broker and real ``redis-server`` processes started here.
The calm run streams them once with nothing happening; then each scenario streams
the same lines again into a fresh state and topics of its own, under its fault:

* none: the calm run again, the control;
* 10 SIGKILLs of the worker at random moments (a new worker each time);
* three workers, one SIGKILLed and, once its partitions moved, one SIGTERMed;
* a Redis restart (AOF ``everysec``, clean shutdown) mid-stream;
* broker pauses (SIGSTOP) of 20 s and of 150 s (past the producer's 120 s delivery
  timeout), and a broker restart (its data kept in an S3 object store);
* a Redis power loss (an AOF copy restored after two more commits);
* a zombie worker (SIGSTOPped past its session timeout while another takes over,
  then SIGCONTed);
* the poison corpus of ``tests/test_poison.py`` injected a month into the stream.

Each row is :func:`harness.chaos_metrics.compare` of the scenario with the calm run;
every loss and mismatch column must be 0. Run: ``python -m harness.chaos [dataset]
[--end 2011-09-01] [--seed 7]`` (about 15 minutes); the logs stay in the directory
printed first.
"""

from __future__ import annotations

import argparse
import functools
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypedDict

import redis

from harness.chaos_metrics import Observed, Row, compare, observe
from rig.local_services import ObjectStore, RedisServer, TansuBroker
from shared.redis_client import make_redis
from shared.settings import Settings, isolated_settings
from shared.state.keys import Keys
from tests.faults import Landed, one_killed_one_stopped, power_loss, wait_for, zombie
from tests.pipeline import REAL_CUTOFF, applied, bootstrap, kafka_committed, replay_file, worker_process
from tests.poison_corpus import poison_corpus, send_poison

DATASET = Path(__file__).resolve().parents[2] / "shared/data/online_retail.csv.xz"
END = datetime(2011, 9, 1)
POISON_AT = REAL_CUTOFF + timedelta(days=30)
PARTITIONS = 6
WORKER = {"batch_max_records": "500"}  # small batches: a fault falls between many commits
KILLS = 10


class Allowed(TypedDict, total=False):
    """What a scenario may differ in from the calm run (see :func:`harness.chaos_metrics.compare`)."""

    expected_dead_letters: int
    offsets_differ: bool
    generations_differ: bool


@dataclass
class Run:
    """One scenario's settings and Redis client, where its logs go, and how many records its stream holds."""

    settings: Settings
    client: redis.Redis
    logs: Path
    sent: int

    @property
    def group(self) -> str:
        return f"g-{self.settings.redis.key_prefix}"

    def landed(self) -> int:
        """Records applied so far (the checkpoints' offsets)."""
        return applied(self.client, Keys(self.settings.redis.key_prefix), self.settings.topics.partitions)

    def worker(self, name: str, until_caught_up: bool = True) -> subprocess.Popen[bytes]:
        return worker_process(self.settings, self.group, self.logs / f"{name}.log", until_caught_up, **WORKER)

    def finish(self, process: subprocess.Popen[bytes], name: str) -> None:
        """Wait for a worker run ``--until-caught-up``; it must exit 0."""
        code = process.wait(timeout=1_200)
        if code != 0:
            raise RuntimeError(f"worker {name} exited {code}: {(self.logs / f'{name}.log').read_text()[-2000:]}")


@dataclass
class Services:
    """The processes every scenario may share: a broker holding the calm run's stream, a Redis."""

    dataset: Path
    end: datetime
    root: Path
    broker: TansuBroker
    redis_url: str
    invoices: str = ""
    sent: int = 0
    stack: ExitStack = field(default_factory=ExitStack)


def _mid_stream(run: Run, fraction: float = 0.25) -> Landed:
    """Wait until ``fraction`` of the stream is applied, and make sure the stream is not over yet."""
    wait_for(lambda: run.landed() > run.sent * fraction, "no progress before the fault")
    assert run.landed() < run.sent, "the stream ended before the fault"
    return run.landed


def _beyond(run: Run, done: int) -> bool:
    return run.landed() > done


def _prepare(services: Services, name: str, broker: TansuBroker | None = None, redis_url: str | None = None) -> Run:
    """A bootstrapped state of its own; the calm run's stream unless the scenario has its own broker."""
    settings = isolated_settings(
        (broker or services.broker).bootstrap_servers, redis_url or services.redis_url, name, partitions=PARTITIONS
    )
    logs = services.root / name
    logs.mkdir()
    client = make_redis(settings.redis)
    bootstrap(settings, client, services.dataset, REAL_CUTOFF, logs)
    if broker is None and services.invoices:
        settings.topics.invoices = services.invoices
        return Run(settings, client, logs, services.sent)
    sent = replay_file(settings, services.dataset, REAL_CUTOFF, logs, end=services.end)
    return Run(settings, client, logs, sent)


def _alone(run: Run, fault: Callable[[Run], None]) -> None:
    """One worker, run until caught up, with ``fault`` done to the world around it meanwhile."""
    process = run.worker("worker")
    try:
        fault(run)
        run.finish(process, "worker")
    finally:
        if process.poll() is None:
            process.kill()


def calm(services: Services) -> Run:
    run = _prepare(services, "calm")
    services.invoices, services.sent = run.settings.topics.invoices, run.sent
    _alone(run, lambda run: None)
    return run


def control(services: Services) -> Run:
    """The calm run again: what any difference in the other rows is measured against."""
    run = _prepare(services, "control")
    _alone(run, lambda run: None)
    return run


def sigkills(services: Services, seed: int) -> Run:
    run = _prepare(services, "sigkill")
    rng = random.Random(seed)
    # Random moments as shares of the stream, not of time: a faster worker must not finish first.
    targets = sorted(rng.uniform(0.05, 0.9) for _ in range(KILLS))
    done = 0
    for n, target in enumerate(targets):
        process = run.worker(f"killed-{n}")
        passed = max(done, int(run.sent * target))
        wait_for(functools.partial(_beyond, run, passed), f"worker {n} made no progress", timeout_s=120)
        time.sleep(rng.uniform(0.0, 0.2))  # anywhere within a step
        process.send_signal(signal.SIGKILL)
        process.wait()
        done = run.landed()
        assert done < run.sent, f"the stream ended before SIGKILL {n + 1}"
    run.finish(run.worker("final"), "final")
    return run


def three_workers(services: Services) -> Run:
    run = _prepare(services, "three")
    workers = one_killed_one_stopped(run.settings, run.group, run.logs, run.landed, run.sent, **WORKER)
    assert [w.returncode for w in workers] == [-signal.SIGKILL, 0, 0], [w.returncode for w in workers]
    return run


def redis_restart(services: Services) -> Run:
    server = services.stack.enter_context(RedisServer())
    run = _prepare(services, "redis-restart", redis_url=server.url)

    def restart(run: Run) -> None:
        _mid_stream(run)
        server.restart(down_s=2.0)

    _alone(run, restart)
    return run


def broker_pause(services: Services, seconds: float) -> Run:
    broker = services.stack.enter_context(TansuBroker())
    run = _prepare(services, f"broker-pause-{seconds:.0f}s", broker=broker)

    def pause(run: Run) -> None:
        _mid_stream(run)
        broker.pause()
        time.sleep(seconds)
        broker.resume()

    _alone(run, pause)
    return run


def broker_restart(services: Services) -> Run:
    store = services.stack.enter_context(ObjectStore())
    broker = services.stack.enter_context(TansuBroker(storage=store))
    run = _prepare(services, "broker-restart", broker=broker)

    def restart(run: Run) -> None:
        _mid_stream(run)
        broker.restart(down_s=5.0)

    _alone(run, restart)
    return run


def redis_power_loss(services: Services) -> Run:
    server = services.stack.enter_context(RedisServer())
    run = _prepare(services, "power-loss", redis_url=server.url)

    def lose_power(run: Run) -> None:
        with kafka_committed(run.settings, run.group) as committed:
            power_loss(server, _mid_stream(run), committed, run.logs)

    _alone(run, lose_power)
    return run


def zombie_worker(services: Services) -> Run:
    run = _prepare(services, "zombie")
    first, second = zombie(run.settings, run.group, run.logs, run.landed, run.sent, **WORKER)
    assert (first.returncode, second.returncode) == (0, 0), (first.returncode, second.returncode)
    assert "rejoining" in (run.logs / "first.log").read_text(), "the zombie was never fenced"
    return run


def poison(services: Services) -> Run:
    settings = isolated_settings(services.broker.bootstrap_servers, services.redis_url, "poison", partitions=PARTITIONS)
    logs = services.root / "poison"
    logs.mkdir()
    client = make_redis(settings.redis)
    bootstrap(settings, client, services.dataset, REAL_CUTOFF, logs)
    sent = replay_file(settings, services.dataset, REAL_CUTOFF, logs, end=POISON_AT)
    corpus = poison_corpus(PARTITIONS, POISON_AT)
    send_poison(settings, corpus)
    sent += len(corpus) + replay_file(settings, services.dataset, POISON_AT, logs, end=services.end)
    run = Run(settings, client, logs, sent)
    _alone(run, lambda run: None)
    return run


@contextmanager
def services(dataset: Path, end: datetime) -> Iterator[Services]:
    """The shared broker and Redis, and every process a scenario starts, stopped on the way out."""
    root = Path(tempfile.mkdtemp(prefix="chaos-"))
    with ExitStack() as stack:
        broker = stack.enter_context(TansuBroker())
        server = stack.enter_context(RedisServer(appendonly=False))
        yield Services(dataset, end, root, broker, server.url, stack=stack)


COLUMNS = (
    ("scenario", 26),
    ("customers", 9),
    ("keys≠calm", 9),
    ("missing", 7),
    ("extra", 5),
    ("duplicated", 10),
    ("re-sent", 7),
    ("out of seq", 10),
    ("conflicting", 11),
    ("latest≠Redis", 12),
    ("dead letters", 12),
    ("s", 4),
)


def table(rows: list[Row]) -> str:
    """The chaos table: one line per scenario, the dead letters with how many were expected."""
    lines = ["  ".join(f"{name:>{width}}" if i else f"{name:<{width}}" for i, (name, width) in enumerate(COLUMNS))]
    for row in rows:
        letters = f"{row.dead_letters}/{row.expected_dead_letters}" if row.expected_dead_letters else row.dead_letters
        cells = [
            row.scenario,
            row.customers,
            row.mismatched_keys,
            row.missing,
            row.extra,
            row.duplicated,
            row.resent,
            row.out_of_sequence,
            row.conflicting,
            row.latest_differs,
            letters,
            f"{row.seconds:.0f}",
        ]
        lines.append(
            "  ".join(
                f"{cell:>{width}}" if i else f"{cell:<{width}}"
                for i, (cell, (_, width)) in enumerate(zip(cells, COLUMNS, strict=True))
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dataset", nargs="?", type=Path, default=DATASET)
    parser.add_argument("--end", type=datetime.fromisoformat, default=END, help="stream up to this day (exclusive)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the SIGKILL moments")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    args = parser.parse_args(argv)
    scenarios: list[tuple[str, Callable[[Services], Run], Allowed]] = [
        ("calm again (control)", control, {}),
        (f"{KILLS} SIGKILLs (seed {args.seed})", lambda s: sigkills(s, args.seed), {}),
        ("3 workers: KILL + TERM", three_workers, {}),
        ("Redis restart (AOF)", redis_restart, {}),
        ("broker paused 20 s", lambda s: broker_pause(s, 20.0), {}),
        ("broker paused 150 s", lambda s: broker_pause(s, 150.0), {}),
        ("broker restart (S3 store)", broker_restart, {}),
        ("Redis power loss", redis_power_loss, {"generations_differ": True}),
        ("zombie worker", zombie_worker, {}),
        ("poison corpus", poison, {"offsets_differ": True, "expected_dead_letters": 18}),
    ]
    with services(args.dataset, args.end) as shared:
        print(
            f"chaos: {args.dataset.name}, bootstrap < {REAL_CUTOFF:%Y-%m-%d}, stream to {args.end:%Y-%m-%d}, "
            f"{PARTITIONS} partitions; logs in {shared.root}",
            flush=True,
        )
        started = time.monotonic()
        reference = calm(shared)
        expected: Observed = observe(reference.settings, reference.client)
        print(
            f"calm run: {reference.sent:,} lines, {len(expected.changes):,} segment changes, "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        rows: list[Row] = []
        failed = []
        for name, scenario, options in scenarios:
            if args.only and not any(word in name for word in args.only):
                continue
            started = time.monotonic()
            try:
                run = scenario(shared)
            except (AssertionError, RuntimeError) as exc:
                failed.append(f"{name}: {exc}")
                print(f"{name}: FAILED: {exc}", flush=True)
                continue
            row = compare(name, expected, observe(run.settings, run.client), time.monotonic() - started, **options)
            (run.logs / "differences.txt").write_text("".join(f"{line}\n" for line in row.details))
            rows.append(row)
            print(table([row]).splitlines()[1], flush=True)
    print()
    print(table(rows))
    bad = [row.scenario for row in rows if not row.clean] + failed
    print("\nall loss and mismatch figures 0" if not bad else f"\nNOT CLEAN: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
