"""Per-segment recommendations: what a customer's segment buys most that the customer has not had.

For CRM systems and other consumers that hold a Redis client: the worker keeps
``segment:{id}:products`` (net units per stock code of the customers whose
*published* segment is ``id``, the segment consumers see), so a recommendation
is two reads, the customer's record and the head of one sorted set. Products
the customer has bought or returned (any product line of theirs) are left out,
and so are products whose net units in the segment are not positive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

from shared.exceptions import UnknownCustomerError
from shared.state.keys import Keys


@dataclass(frozen=True)
class Recommendation:
    """A stock code and the net units the customer's segment bought of it."""

    stock_code: str
    units: int


def recommend(client: redis.Redis, keys: Keys, customer_id: str, n: int = 10) -> list[Recommendation]:
    """The ``n`` products its published segment bought most (net units) that the customer never had.

    Ties are in Redis' order (stock code descending). Empty while the customer
    has no published segment; :class:`UnknownCustomerError` when it has no
    record. ``client`` must decode replies (:func:`shared.redis_client.make_redis`).
    """
    aggregates, published = client.hmget(keys.customer(customer_id), ["agg", "published"])
    if aggregates is None:
        raise UnknownCustomerError(customer_id, keys.prefix)
    if not published or n <= 0:
        return []
    had = json.loads(aggregates).get("product_units", {})
    # The head long enough to hold n products the customer has not had, whatever it had.
    head = client.zrevrangebyscore(
        keys.segment_products(int(published)), "+inf", "(0", start=0, num=n + len(had), withscores=True
    )
    return [Recommendation(code, int(units)) for code, units in head if code not in had][:n]
