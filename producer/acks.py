"""Broker acknowledgements -> the contiguous prefix of delivered sequence numbers.

Why a prefix: sends to different partitions complete out of order, and a resume
may only skip rows that are *all* known delivered. Futures are kept in send order
and popped from the left while done, so the watermark never jumps over a gap,
and a failed send stops it there (nothing after a failure is counted, so nothing
unacknowledged is ever checkpointed). The waits are bounded and say when the
broker has gone quiet for longer than the producer's own timeouts allow.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque

from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from shared.exceptions import DeliveryError
from shared.redaction import redact


class AckTracker:
    """``acked`` = how many sequence numbers from 0 up are delivered; ``ends`` = where they end per partition.

    Start it at a resume point: sequence numbers below it are known delivered and
    are not sent again, so the watermark can never fall back behind a checkpoint.
    ``ends[(topic, partition)]`` is the offset after the last acknowledged message
    of the prefix in that partition (kept from the checkpoint for partitions this
    run has not written to yet).
    """

    def __init__(self, acked: int = 0, ends: dict[tuple[str, int], int] | None = None) -> None:
        self.acked = acked
        self.ends: dict[tuple[str, int], int] = dict(ends or {})
        self._pending: deque[FutureRecordMetadata] = deque()
        self._moved_at = time.monotonic()

    @property
    def pending(self) -> int:
        """Sent and not yet counted (acknowledged behind a gap, or not at all)."""
        return len(self._pending)

    def track(self, future: FutureRecordMetadata) -> None:
        """Record the send of the next sequence number (``acked + pending``)."""
        if not self._pending:
            self._moved_at = time.monotonic()
        self._pending.append(future)

    def advance(self) -> int:
        """Move the watermark over every finished send at the front; :class:`DeliveryError` if one failed."""
        pending = self._pending
        ends = self.ends
        moved = False
        while pending and pending[0].is_done:
            future = pending[0]
            if future.exception is not None:
                raise DeliveryError(
                    f"the broker did not acknowledge message {self.acked}: {redact(str(future.exception))}",
                    acknowledged=self.acked,
                ) from future.exception
            pending.popleft()
            metadata = future.value
            ends[metadata.topic, metadata.partition] = metadata.offset + 1
            self.acked += 1
            moved = True
        if moved:
            self._moved_at = time.monotonic()
        return self.acked

    def wait(self, timeout_s: float, quiet_limit_s: float) -> int:
        """Wait up to ``timeout_s`` for the oldest send, then :meth:`advance`.

        Raises :class:`DeliveryError` when nothing was acknowledged for
        ``quiet_limit_s`` while sends are pending: the producer should have
        failed them by then (its delivery timeout), so it is not to be trusted.
        """
        if self._pending:
            with contextlib.suppress(KafkaError):  # advance() reports a failure
                self._pending[0].get(timeout=timeout_s)
        acked = self.advance()
        quiet = time.monotonic() - self._moved_at
        if self._pending and quiet > quiet_limit_s:
            raise DeliveryError(
                f"the broker acknowledged nothing for {quiet:.0f} s ({self.pending} messages waiting)",
                acknowledged=acked,
            )
        return acked

    def acked_so_far(self) -> int:
        """The watermark after a last :meth:`advance`, also when a send failed (for the final checkpoint)."""
        try:
            return self.advance()
        except DeliveryError:
            return self.acked
