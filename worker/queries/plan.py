"""Queries as plans: a query yields batches of Redis commands and receives their replies.

Why: the CLI holds a blocking Redis client and the API an asyncio one (a thread per
request would halve its throughput). A query written once as a generator runs on
either: :func:`run` and :func:`arun` send each yielded batch as one pipeline (one
round trip) and hand the replies back, until the query returns its view.

>>> def double(key):
...     (value,) = yield [call("get", key)]
...     return 2 * int(value)
>>> class Echo:  # stands in for redis.Redis here; any client with pipelines works
...     def pipeline(self, transaction):
...         return self
...     def get(self, key):
...         self.key = key
...     def execute(self):
...         return [len(self.key)]
>>> run(Echo(), double("abc"))
6
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
import redis.asyncio

T = TypeVar("T")


@dataclass(frozen=True)
class Command:
    """One redis-py client method call, e.g. ``Command("hmget", (key, fields))``."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


def call(name: str, *args: Any, **kwargs: Any) -> Command:
    return Command(name, args, kwargs)


Query = Generator[Sequence[Command], list[Any], T]
"""Yields command batches, receives each batch's replies in order, returns the result."""


def _queue(pipe: Any, batch: Sequence[Command]) -> None:
    for command in batch:
        getattr(pipe, command.name)(*command.args, **command.kwargs)


def run(client: redis.Redis, query: Query[T]) -> T:
    """Run ``query`` on a blocking client, one pipeline per batch."""
    try:
        batch = next(query)
        while True:
            pipe = client.pipeline(transaction=False)
            _queue(pipe, batch)
            batch = query.send(pipe.execute() if batch else [])
    except StopIteration as done:
        return done.value


async def arun(client: redis.asyncio.Redis, query: Query[T]) -> T:
    """Run ``query`` on an asyncio client, one pipeline per batch."""
    try:
        batch = next(query)
        while True:
            pipe = client.pipeline(transaction=False)
            _queue(pipe, batch)
            batch = query.send(await pipe.execute() if batch else [])
    except StopIteration as done:
        return done.value
