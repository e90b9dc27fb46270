"""Broker acknowledgements -> the contiguous prefix of delivered sequence numbers.

Why a prefix: sends to different partitions complete out of order, and a resume
may only skip rows that are *all* known delivered. Futures are kept in send order
and popped from the left while done, so the watermark never jumps over a gap.
"""

from __future__ import annotations

from collections import deque

from kafka.producer.future import FutureRecordMetadata

from shared.exceptions import ServiceUnavailableError


class AckTracker:
    """``acked`` = how many sequence numbers from 0 up are delivered.

    Start it at a resume point: sequence numbers below it are known delivered and
    are not sent again, so the watermark can never fall back behind a checkpoint.
    """

    def __init__(self, acked: int = 0) -> None:
        self.acked = acked
        self._pending: deque[FutureRecordMetadata] = deque()

    def track(self, future: FutureRecordMetadata) -> None:
        """Record the send of the next sequence number (``acked + pending``)."""
        self._pending.append(future)

    def advance(self) -> int:
        """Move the watermark over every finished send at the front; raise if one failed."""
        pending = self._pending
        while pending and pending[0].is_done:
            future = pending.popleft()
            if future.exception is not None:
                raise ServiceUnavailableError(
                    f"the broker did not accept message {self.acked}: {future.exception}"
                ) from future.exception
            self.acked += 1
        return self.acked
