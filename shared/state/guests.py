"""Guest checkouts per partition (``{pn}:guests``): lines, amount and distinct invoices.

Why the amount is kept in nano-pounds (an integer): each partition's share is
added to batch by batch, and a float sum would depend on where the batches were
cut; integers add up the same in any order, so a replay gives the same bytes.
A line's amount rounded to 1e-9 £ keeps the total exact to far better than a penny.

>>> nanos(2.55 * 6), pounds(15_300_000_000)
(15300000000, 15.3)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis

from shared.features.aggregates import GuestStats
from shared.state.keys import Keys
from shared.state.layout import partition_count

NANO = 1_000_000_000


def nanos(amount: float) -> int:
    """An amount in pounds as integer nano-pounds."""
    return round(amount * NANO)


def pounds(amount_nanos: int) -> float:
    return amount_nanos / NANO


def total_nanos(amounts: Iterable[float]) -> int:
    return sum(nanos(amount) for amount in amounts)


def parse(raw: Mapping[str, str]) -> GuestStats:
    return GuestStats(int(raw.get("lines", 0)), pounds(int(raw.get("amount_nanos", 0))), int(raw.get("invoices", 0)))


def guest_stats(client: redis.Redis, keys: Keys) -> GuestStats:
    """The shop's guest statistics: every partition's share added up."""
    pipe = client.pipeline(transaction=False)
    for partition in range(partition_count(client, keys)):
        pipe.hgetall(keys.guests(partition))
    lines = invoices = amount = 0
    for raw in pipe.execute():
        lines += int(raw.get("lines", 0))
        invoices += int(raw.get("invoices", 0))
        amount += int(raw.get("amount_nanos", 0))
    return GuestStats(lines, pounds(amount), invoices)
