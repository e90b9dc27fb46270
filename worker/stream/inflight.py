"""The batch commit lands in the background while the worker processes the next batch.

Why: the commit script runs inside Redis (another process, another core) for tens
of milliseconds per batch, and publishing then waits for Kafka's acks; a worker
that waited for both would sit idle for a tenth of a catch-up run.

At most one task is in flight: the worker waits for it (:meth:`InflightCommit.settle`)
before it submits the next, so commits land in order and each one's fence (the
offsets it expects) checks the one before. A task that fails is never followed by
another: the failure is raised where the worker waits, and the worker reloads
from Redis, where the stored offsets say whether the batch landed.

Turns: Redis runs one script at a time, and the next step's read would queue behind
the commit scripts. A task waits for its :meth:`~InflightCommit.turn` before it sends
them, until the worker has that read's answers (:meth:`~InflightCommit.release`;
waiting, settling or closing release too, and the wait is bounded): the read answers
at once (a commit sent while the read was still arriving could run between its
scripts) and the commit runs in Redis while the worker computes. The read already
counts what the commit in flight writes as there (``landing``), so the order changes
no answer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from threading import Event
from typing import Generic, TypeVar

T = TypeVar("T")
TURN_S = 0.5  # the longest a task waits for its turn (the worker releases it within a step's fetch and read)


class InflightCommit(Generic[T]):
    """One background thread that runs tasks one at a time, each with what it lands (``T``)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-commit")
        self._future: Future[None] | None = None
        self._landing: T | None = None
        self._go = Event()

    @property
    def landing(self) -> T | None:
        """What the task in flight lands (not in Redis yet while it runs)."""
        return self._landing

    def submit(self, task: Callable[[], None], landing: T) -> None:
        """Run ``task`` in the background; the previous one must be settled."""
        if self._future is not None:
            raise RuntimeError("a batch commit is still in flight: settle it first")
        self._go = Event()
        self._future = self._executor.submit(task)
        self._landing = landing

    def turn(self) -> None:
        """In the task: wait until the worker releases it (or :data:`TURN_S` passed)."""
        self._go.wait(TURN_S)

    def release(self) -> None:
        """Let the task in flight go on (the worker has its read's answers, or it waits for the task)."""
        self._go.set()

    def wait(self) -> None:
        """Block until the task in flight (if any) has finished, without raising its failure."""
        self.release()
        if self._future is not None:
            wait([self._future])

    def settle(self) -> T | None:
        """Wait for the task in flight; raise its failure, or return what it landed (None if none)."""
        future, landing = self._future, self._landing
        self._future, self._landing = None, None
        if future is None:
            return None
        self.release()
        future.result()
        return landing

    def forget(self) -> None:
        """After a reload: nothing is in flight any more, and Redis is the only truth."""
        self.wait()
        self._future, self._landing = None, None

    def close(self) -> None:
        self.release()
        self._executor.shutdown(wait=True)
