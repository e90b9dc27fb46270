"""When a customer's published segment switches: the debounce rules, apart from the model.

The model statistics always follow the nearest centroid; what consumers see (the
published segment) switches only when it is worth a message:

* the new centroid must be closer than the published one by ``margin`` (scaled
  units), so a customer on a boundary does not flip with every small move;
* after an event (purchase, cancellation) that is enough: the switch is published
  at the event's time;
* a switch caused by time alone (found at a daily sweep) must hold at
  ``confirm_sweeps`` consecutive sweeps, and the published segment must be more
  than ``dwell`` old, so bursts of idle customers on a moving boundary do not
  switch back and forth.

>>> import numpy as np
>>> policy = PublishPolicy(margin=0.5, confirm_sweeps=2, dwell_us=0)
>>> policy.after_event(np.array([-1, 3, 3]), np.array([2, 2, 2]), np.array([0.0, 0.9, 0.2])).tolist()
[True, True, False]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_SEGMENT = -1


@dataclass(frozen=True)
class Pending:
    """Inactivity switches being confirmed, per customer: the candidate segment and how many sweeps it held."""

    segment: np.ndarray
    count: np.ndarray


@dataclass(frozen=True)
class PublishPolicy:
    margin: float
    confirm_sweeps: int
    dwell_us: int

    def after_event(self, published: np.ndarray, assigned: np.ndarray, margin: np.ndarray) -> np.ndarray:
        """Publish after an event? ``margin`` = distance to the published centroid minus to the assigned one.

        A customer with no published segment yet is always published; one whose
        published segment the model no longer holds has an infinite margin.
        """
        return (published == NO_SEGMENT) | ((published != assigned) & (margin > self.margin))

    def at_sweep(
        self,
        published: np.ndarray,
        assigned: np.ndarray,
        margin: np.ndarray,
        pending: Pending,
        published_at: np.ndarray,
        boundary: int,
    ) -> tuple[np.ndarray, Pending]:
        """Publish at a sweep (inactivity)? Returns the mask and the pending confirmations after it.

        A customer counts towards confirmation while its published segment is
        clearly farther than its assigned one; its count restarts when the
        candidate changes and is cleared when it is no longer publishable.
        """
        publishable = (published != NO_SEGMENT) & (published != assigned) & (margin > self.margin)
        held = np.where(publishable & (pending.segment == assigned), pending.count + 1, 1)
        count = np.where(publishable, held, 0)
        settled = published_at + self.dwell_us < boundary
        publish = publishable & (count >= self.confirm_sweeps) & settled
        waiting = publishable & ~publish
        after = Pending(
            segment=np.where(waiting, assigned, NO_SEGMENT), count=np.where(waiting, count, 0).astype(np.int64)
        )
        return publish, after
