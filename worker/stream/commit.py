"""One atomic Redis step per batch: state, model statistics, product popularity, outbox and offsets together.

Why one Lua script: if the worker dies anywhere, Redis holds either the whole
batch or none of it, and the stored offsets say exactly where to resume, so no
event is lost or counted twice. The script also fences: it refuses the batch
when a partition's stored offset is not the one this worker started from (another
worker owns the partition now), and the worker then reloads instead of writing
over the newer state.

Product popularity (``segment:{id}:products``) is incremented per (segment, stock
code) with the batch's netted deltas; a member whose units reach 0 is removed,
so a sorted set holds only products its members have net units of (negative when
returns outweigh purchases) and an emptied segment's key disappears.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import redis

from shared.exceptions import FencedError
from shared.state.keys import Keys

_SCRIPT = """
local p = cjson.decode(ARGV[1])
local offsets_key = p.offsets_key
for partition, expected in pairs(p.expect) do
  local stored = redis.call('HGET', offsets_key, partition)
  local current = -1
  if stored then current = tonumber(stored) end
  if current ~= expected then
    return {0, partition, current}
  end
end
for _, entry in ipairs(p.customers) do
  redis.call('HSET', entry[1], unpack(entry[2]))
end
if #p.new_customers > 0 then
  redis.call('SADD', p.customers_key, unpack(p.new_customers))
end
for key, ids in pairs(p.dedup) do
  redis.call('SADD', key, unpack(ids))
end
for _, key in ipairs(p.dedup_drop) do
  redis.call('DEL', key)
end
for _, entry in ipairs(p.stats) do
  redis.call('DEL', entry[1])
  redis.call('HSET', entry[1], unpack(entry[2]))
end
if p.guest_lines > 0 then
  redis.call('HINCRBY', p.guests_key, 'lines', p.guest_lines)
  redis.call('HINCRBYFLOAT', p.guests_key, 'amount', p.guest_amount)
  redis.call('SADD', p.guest_invoices_key, unpack(p.guest_invoices))
end
for _, entry in ipairs(p.products) do
  local key, members = entry[1], entry[2]
  for i = 1, #members, 2 do
    redis.call('ZINCRBY', key, members[i + 1], members[i])
  end
  redis.call('ZREMRANGEBYSCORE', key, 0, 0)
end
for name, delta in pairs(p.counters) do
  redis.call('HINCRBY', p.counters_key, name, delta)
end
for key, box in pairs(p.outbox) do
  if box.trim > 0 then redis.call('LTRIM', key, box.trim, -1) end
  if #box.push > 0 then redis.call('RPUSH', key, unpack(box.push)) end
end
for partition, offset in pairs(p.offsets) do
  redis.call('HSET', offsets_key, partition, offset)
end
if p.watermark ~= '' then
  local current = redis.call('GET', p.watermark_key)
  if (not current) or current < p.watermark then
    redis.call('SET', p.watermark_key, p.watermark)
  end
end
return {1, '', 0}
"""


@dataclass
class BatchCommit:
    """Everything one batch changes, gathered in memory and written at once."""

    expect: dict[int, int]
    offsets: dict[int, int] = field(default_factory=dict)
    customers: dict[str, dict[str, str]] = field(default_factory=dict)
    new_customers: set[str] = field(default_factory=set)
    dedup: dict[str, list[str]] = field(default_factory=dict)
    dedup_drop: list[str] = field(default_factory=list)
    stats: dict[str, dict[str, str]] = field(default_factory=dict)
    guest_lines: int = 0
    guest_amount: float = 0.0
    guest_invoices: set[str] = field(default_factory=set)
    counters: dict[str, int] = field(default_factory=dict)
    products: dict[int, dict[str, int]] = field(default_factory=dict)  # segment -> stock code -> net units to add
    outbox: dict[int, tuple[int, list[str]]] = field(default_factory=dict)
    observations: dict[int, tuple[int, list[str]]] = field(default_factory=dict)
    watermark: str = ""

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


class Committer:
    """Runs the batch script; registered once per client."""

    def __init__(self, client: redis.Redis, keys: Keys, topic: str) -> None:
        self.keys = keys
        self.topic = topic
        self._script = client.register_script(_SCRIPT)

    def outbox_key(self, partition: int) -> str:
        """Segment changes committed but maybe not yet published (drained on reassignment)."""
        return f"{self.keys.prefix}outbox:{self.topic}:{partition}"

    def observations_key(self, partition: int) -> str:
        """Drift observations committed but maybe not yet published (drained on reassignment)."""
        return f"{self.keys.prefix}outbox-observations:{self.topic}:{partition}"

    @property
    def counters_key(self) -> str:
        return f"{self.keys.prefix}worker:counters"

    def commit(self, batch: BatchCommit) -> None:
        """Apply the batch atomically, or raise :class:`FencedError` and apply nothing."""
        payload = {
            "offsets_key": self.keys.offsets(self.topic),
            "customers_key": self.keys.customers,
            "guests_key": self.keys.guests,
            "guest_invoices_key": self.keys.guest_invoices,
            "counters_key": self.counters_key,
            "watermark_key": self.keys.watermark,
            "expect": {str(p): o for p, o in batch.expect.items()},
            "offsets": {str(p): o for p, o in batch.offsets.items()},
            "customers": [
                [self.keys.customer(cid), [x for kv in fields.items() for x in kv]]
                for cid, fields in batch.customers.items()
            ],
            "new_customers": sorted(batch.new_customers),
            "dedup": batch.dedup,
            "dedup_drop": batch.dedup_drop,
            "stats": [[key, [x for kv in fields.items() for x in kv]] for key, fields in batch.stats.items()],
            "guest_lines": batch.guest_lines,
            "guest_amount": repr(batch.guest_amount),
            "guest_invoices": sorted(batch.guest_invoices),
            "counters": batch.counters,
            "products": [
                [self.keys.segment_products(segment), [x for code, n in units.items() for x in (code, str(n))]]
                for segment, units in batch.products.items()
            ],
            "outbox": {self.outbox_key(p): {"trim": t, "push": push} for p, (t, push) in batch.outbox.items()}
            | {self.observations_key(p): {"trim": t, "push": push} for p, (t, push) in batch.observations.items()},
            "watermark": batch.watermark,
        }
        ok, partition, stored = self._script(args=[orjson.dumps(payload)])
        if not ok:
            raise FencedError(int(partition), int(stored))
