"""Faults done to real processes mid-stream, written once for ``tests/test_faults.py`` and ``make chaos``.

Each waits for progress read from Redis (the records applied, :func:`tests.pipeline.applied`)
rather than for a time, so a fault falls in the middle of the stream however fast
the machine is.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from rig.local_services import RedisServer
from shared.settings import Settings
from tests.pipeline import worker_process

Landed = Callable[[], int]  # a progress probe: records applied in Redis (or committed to Kafka) so far


def wait_for(condition: Callable[[], bool], failure: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.01)


def power_loss(server: RedisServer, landed: Landed, committed: Landed, scratch: Path) -> None:
    """A power loss under ``appendfsync everysec``: Redis comes back without its last commits.

    The AOF is copied (what the disk holds), the stream goes on until Kafka's
    committed offsets (``committed``, summed over partitions) pass every offset the
    copy can hold, Redis is SIGKILLed, the copy put back and Redis started again on it.
    Waiting on Kafka's offsets rather than on Redis's makes the rollback one the
    worker must see: Kafka's commit trails Redis's by a batch.
    """
    aof = server.workdir / "appendonlydir"
    wait_for(lambda: landed() > 0, "nothing landed")
    shutil.copytree(aof, scratch / "aof-copy")
    copied = landed()  # read after the copy: at least every offset the copy holds
    wait_for(lambda: committed() > copied, "Kafka's committed offsets never passed the copy")
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    shutil.rmtree(aof)
    shutil.copytree(scratch / "aof-copy", aof)
    server.start()


def _stop_all(processes: list[subprocess.Popen[bytes] | None]) -> None:
    """A clean stop of every process still running (a clean stop sends what its last commit put in the outbox)."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.terminate()


def zombie(
    settings: Settings, group: str, logs: Path, landed: Landed, sent: int, **environment: str
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """A worker SIGSTOPped past its session timeout while a second takes over, then SIGCONTed.

    It comes back while the other still runs (its next commit is fenced; a Tansu
    group whose member leaves during a pending join can leave the leader stuck).
    Both run until all ``sent`` records are applied and are then stopped cleanly;
    returns them, exited (logs: ``first.log``, ``second.log`` in ``logs``).
    """
    first = worker_process(settings, group, logs / "first.log", until_caught_up=False, **environment)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: landed() > 0, "the first worker applied nothing")
        first.send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # a commit script it sent just before may still be running in Redis
        stopped_at = landed()
        second = worker_process(settings, group, logs / "second.log", until_caught_up=False, **environment)
        wait_for(lambda: landed() > stopped_at, "the second worker took nothing over")
        first.send_signal(signal.SIGCONT)
        wait_for(lambda: landed() == sent, "the two workers did not finish the stream", timeout_s=600)
    finally:
        _stop_all([first, second])
    first.wait(timeout=60)
    assert second is not None
    second.wait(timeout=60)
    return first, second


def _assignments(log: Path) -> int:
    return len(re.findall("assigned partitions", log.read_text())) if log.exists() else 0


def one_killed_one_stopped(
    settings: Settings, group: str, logs: Path, landed: Landed, sent: int, **environment: str
) -> list[subprocess.Popen[bytes]]:
    """Three workers share the stream; one is SIGKILLed, and once the group has moved its partitions to the
    others, one of those is SIGTERMed.

    The last runs until all ``sent`` records are applied and is then stopped
    cleanly; returns the three, exited (logs: ``worker-<n>.log`` in ``logs``).
    """
    paths = [logs / f"worker-{n}.log" for n in range(3)]
    workers = [worker_process(settings, group, path, until_caught_up=False, **environment) for path in paths]
    try:
        wait_for(lambda: all(_assignments(path) > 0 for path in paths), "the three workers were never assigned")
        wait_for(lambda: landed() > sent // 5, "the workers applied nothing")
        before = [_assignments(path) for path in paths]
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        wait_for(
            lambda: all(_assignments(path) > count for path, count in zip(paths[1:], before[1:], strict=True)),
            "the killed worker's partitions were not moved to the others",
        )
        at = landed()
        wait_for(lambda: landed() > at, "no progress after the kill")
        workers[1].terminate()
        workers[1].wait(timeout=60)
        wait_for(lambda: landed() == sent, "the last worker did not finish the stream", timeout_s=600)
    finally:
        _stop_all(list(workers))
    for process in workers:
        process.wait(timeout=60)
    return workers
