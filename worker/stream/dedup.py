"""Dropping duplicate events by id, remembered per event day.

A duplicate has the same content, hence the same event time, so each event id
only needs to be looked up in the set of its own event day (``seen:{day}``),
and whole days fall out of memory once the watermark has passed the retention.
The membership check of a whole batch is one script call with one JSON argument:
cheaper than a command argument per id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import orjson
import redis
from redis.client import Pipeline

_SEEN = """
local asked = cjson.decode(ARGV[1])
local found = {}
for key, ids in pairs(asked) do
  local flags = redis.call('SMISMEMBER', key, unpack(ids))
  local hits = {}
  for i, flag in ipairs(flags) do
    if flag == 1 then hits[#hits + 1] = ids[i] end
  end
  if #hits > 0 then found[key] = hits end
end
if next(found) == nil then return '{}' end
return cjson.encode(found)
"""


def dedup_key(prefix: str, moment: datetime) -> str:
    """The set that remembers the event ids of ``moment``'s event day."""
    return f"{prefix}seen:{moment.date().isoformat()}"


def expired_keys(prefix: str, before: datetime, after: datetime, retention_days: int) -> list[str]:
    """Day sets that fell out of the retention as the watermark moved from ``before`` to ``after``."""
    keys = []
    day = before - timedelta(days=retention_days)
    while day < after - timedelta(days=retention_days):
        keys.append(dedup_key(prefix, day))
        day += timedelta(days=1)
    return keys


class SeenCheck:
    """Queues the batch's membership check on a pipeline and decodes its reply."""

    def __init__(self, client: redis.Redis) -> None:
        self._script = client.register_script(_SEEN)

    def queue(self, pipe: Pipeline, ids_by_day: Mapping[str, list[str]]) -> None:
        self._script(args=[orjson.dumps(ids_by_day)], client=pipe)

    @staticmethod
    def decode(reply: str) -> set[str]:
        return {event_id for ids in orjson.loads(reply).values() for event_id in ids}
