"""The batch commit lands in the background while the worker processes the next batch.

Why: the commit script runs inside Redis (another process, another core) for tens
of milliseconds per batch, and the outbox then waits for Kafka's acks; a worker
that waited for both would sit idle for about a tenth of a catch-up run.

At most one commit is in flight: the worker waits for it before it sends the next
one, so commits land in order and each one's fence (the offsets it expects) checks
the one before. A commit that fails is never followed by another: the failure is
raised where the worker waits (:meth:`InflightCommit.settle`), and the worker
reloads from Redis, where the stored offsets say whether the batch landed.

While a commit is in flight, Redis does not yet hold its event ids, so the next
batch's duplicate check, which reads Redis, also drops the ids of the last batch
sent (:attr:`InflightCommit.event_ids`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait


class InflightCommit:
    """One background thread that runs batch commits, one at a time."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-commit")
        self._future: Future[None] | None = None
        self._offsets: dict[int, int] = {}
        self.event_ids: frozenset[str] = frozenset()

    def submit(self, land: Callable[[], None], offsets: dict[int, int], event_ids: frozenset[str]) -> None:
        """Run ``land`` (commit, then publish) in the background; the previous one must be settled."""
        if self._future is not None:
            raise RuntimeError("a batch commit is still in flight: settle it first")
        self._future = self._executor.submit(land)
        self._offsets = offsets
        self.event_ids = event_ids

    def wait(self) -> None:
        """Block until the commit in flight (if any) has finished, without raising its failure.

        For the rebalance callbacks: partitions change hands only once their last
        commit has landed or failed; the failure is raised later, by :meth:`settle`.
        """
        if self._future is not None:
            wait([self._future])

    def settle(self) -> dict[int, int]:
        """Wait for the commit in flight; raise its failure, or return the offsets it stored ({} if none)."""
        future, offsets = self._future, self._offsets
        self._future, self._offsets = None, {}
        if future is None:
            return {}
        future.result()
        return offsets

    def forget(self) -> None:
        """After a reload: nothing is in flight any more, and Redis is the only truth."""
        self.wait()
        self._future, self._offsets = None, {}
        self.event_ids = frozenset()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
