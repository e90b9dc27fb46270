"""The reference window's scorings, for the drift monitor's segment family: each event's features as of it.

The segment family compares where the scored customers' vectors fall with where they
fell in the last days of the reference window, as a worker scored them then: after
each event (an invoice of the customer), the customer's features as of that event.
Replaying the lines one by one through :func:`~shared.features.aggregates.apply_line`
costs about half a minute on the real year; this computes the same column-wise:

1. fold every line of the events before ``since`` at once (the fold is order-preserving
   per customer, :func:`~shared.features.fold.fold`);
2. then the events from ``since`` on in waves: wave *j* holds each customer's *j*-th
   event (at most one per customer, so the wave's customers are independent), folded
   at once and scored as of each event's time.

So the number of numpy passes is the largest count of events one customer has in the
window, not the number of events.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from shared.features.aggregates import AggregateColumns
from shared.features.clock import to_micros
from shared.features.fold import fold
from shared.features.vector import FEATURE_NAMES, features_matrix, scoreable
from worker.bootstrap.batch_aggregates import customer_lines


def reference_scorings(customers: pd.DataFrame, since: datetime) -> pd.DataFrame:
    """event_time, customer_id and raw ``features`` (one list per row) of every event from ``since`` on.

    ``customers`` are the cleaned customer lines in event order; an event is one
    (invoice, customer), scored at its first line's time once all its lines are folded.
    Customers without a purchase yet are not scored (a worker scores nobody then).
    """
    columns = AggregateColumns()
    lines = customer_lines(customers, columns.countries)
    columns.append(len(lines.ids))
    event, _ = pd.factorize(pd.MultiIndex.from_arrays([customers["invoice_no"], customers["customer_id"]]))
    first = np.full(event.max() + 1 if len(event) else 0, len(event))
    np.minimum.at(first, event, np.arange(len(event)))
    moment = lines.batch.time[first]
    slot = lines.batch.slot[first]
    inside = moment >= to_micros(since)
    rank = np.full(len(first), -1)
    ordered = np.flatnonzero(inside)  # events are numbered in order of first appearance: event order
    rank[ordered] = pd.Series(slot[ordered]).groupby(slot[ordered]).cumcount().to_numpy()
    wave = rank[event]
    fold(columns, lines.batch.take(wave < 0))
    waves = []
    for number in range(int(rank.max(initial=-1)) + 1):
        fold(columns, lines.batch.take(wave == number))
        scored = np.flatnonzero(rank == number)
        scored = scored[scoreable(columns, slot[scored])]
        waves.append((scored, features_matrix(columns, slot[scored], moment[scored])))
    events = np.concatenate([scored for scored, _ in waves]) if waves else np.zeros(0, dtype=np.int64)
    matrix = np.vstack([values for _, values in waves]) if waves else np.zeros((0, len(FEATURE_NAMES)))
    order = np.argsort(events, kind="stable")
    ids = np.asarray(lines.ids, dtype=object)
    return pd.DataFrame(
        {
            "event_time": pd.to_datetime(moment[events[order]], unit="us"),
            "customer_id": ids[slot[events[order]]],
            "features": list(matrix[order]),
        }
    )
