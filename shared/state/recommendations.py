"""Per-segment recommendations: what a customer's segment buys most that the customer has not had.

For CRM systems and other consumers that hold a Redis client: the worker keeps
the net units per stock code of the customers whose *published* segment is
``id``, the segment consumers see, as one sorted set per partition
(:mod:`shared.state.popularity`), so a recommendation reads the customer's
record and members and the segment's sets. Products
the customer has bought or returned (any product line of theirs) are left out,
and so are products whose net units in the segment are not positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.exceptions import UnknownCustomerError
from shared.state.customers import find_record, product_units
from shared.state.keys import Keys
from shared.state.popularity import rank, segment_products


@dataclass(frozen=True)
class Recommendation:
    """A stock code and the net units the customer's segment bought of it."""

    stock_code: str
    units: int


def recommend(client: redis.Redis, keys: Keys, customer_id: str, n: int = 10) -> list[Recommendation]:
    """The ``n`` products its published segment bought most (net units) that the customer never had.

    Ties go to the higher stock code. Empty while the customer has no published
    segment; :class:`UnknownCustomerError` when it has no record. ``client`` must
    decode replies (:func:`shared.redis_client.make_redis`).
    """
    record = find_record(client, keys, customer_id)
    if record is None:
        raise UnknownCustomerError(customer_id, keys.prefix)
    if record.published < 0 or n <= 0:
        return []
    had = product_units(client, keys, customer_id)
    units = segment_products(client, keys, record.published)
    return [Recommendation(code, count) for code, count in rank(units, n, exclude=had)]
