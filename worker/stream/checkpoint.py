"""The worker's checkpoint: one atomic Redis step per partition and batch, fenced by an owner epoch.

What a batch did to a partition (customer records, members, product popularity,
dedup sets, guests, model statistics, counters, the outboxes of segment changes,
drift observations and dead letters) lands in one Lua script together with the
partition's next offset and clock (``{pn}:checkpoint``). Every key the script
touches carries the partition's hash tag and is declared in ``KEYS``, so the same
script runs on a single Redis and on a Redis Cluster. If the worker dies anywhere,
Redis holds the whole batch or none of it, and the stored offset says where to
resume: nothing is lost or counted twice.

Fencing: each assignment of a partition takes a new epoch (:meth:`Checkpoint.claim`,
an ``HINCRBY``); every commit carries the epoch it was made under and the offset
it starts from, and the script refuses it (:class:`~shared.exceptions.FencedError`)
if either moved: a worker that lost the partition, however long it was paused,
writes nothing. Large batches never hit Lua's ``unpack`` limit: every list is
written in chunks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import msgspec
import redis

from shared.exceptions import ConfigError, FencedError
from shared.features.clock import NO_TIME, day_start, iso
from shared.state.dedup import by_bucket
from shared.state.keys import PRODUCT_BUCKET_LUA, Keys

script_argument = msgspec.msgpack.Encoder().encode
"""A script's one argument, as msgpack: Redis's ``cmsgpack.unpack`` takes less of Redis's CPU than
``cjson.decode`` of the same payload as JSON (about 9% of the commit script's)."""

_COMMIT = (
    PRODUCT_BUCKET_LUA
    + """
local p = cmsgpack.unpack(ARGV[1])
local checkpoint = KEYS[1]
local epoch = tonumber(redis.call('HGET', checkpoint, 'epoch') or '0')
if epoch ~= p.epoch then return {0, 'epoch', epoch} end
local stored = tonumber(redis.call('HGET', checkpoint, 'offset') or '-1')
if stored ~= p.expect then return {0, 'offset', stored} end

local function chunked(command, key, values, width)
  local n = #values
  local step = 500 * width
  for i = 1, n, step do
    redis.call(command, key, unpack(values, i, math.min(i + step - 1, n)))
  end
end

-- Adds each delta to its hash field, as one HINCRBY per field would, and drops the fields that reach 0,
-- in an HMGET, an HSET and an HDEL per 500 fields: a command from Lua costs more than the field it
-- changes. flat: field, delta, field, delta, ... (each field once).
local function add_to_fields(key, flat)
  local n = #flat
  for i = 1, n, 1000 do
    local last = math.min(i + 999, n)
    local fields = {}
    for j = i, last, 2 do fields[#fields + 1] = flat[j] end
    local old = redis.call('HMGET', key, unpack(fields))
    local set, drop = {}, {}
    for j, name in ipairs(fields) do
      local value = (tonumber(old[j]) or 0) + flat[i + 2 * j - 1]
      if value == 0 then
        drop[#drop + 1] = name
      else
        set[#set + 1] = name
        set[#set + 1] = string.format('%d', value)
      end
    end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
    if #drop > 0 then redis.call('HDEL', key, unpack(drop)) end
  end
end

-- popularity: net units per (segment, stock code), added up in Lua first so each pair is changed once.
-- Customers whose published segment changed move all their units (as they were before this batch).
-- A segment is the index of its first bucket's key; the bucket of a code is product_bucket's.
-- Codes stay members field names ('p:' .. code) until a pair is written: reading a moved customer's
-- members then copies no string, and each name's bucket is computed once per commit.
local net = {}
local function add(base, name, units)
  local per = net[base]
  if not per then per = {}; net[base] = per end
  per[name] = (per[name] or 0) + units
end
for _, move in ipairs(p.moves) do
  local flat = redis.call('HGETALL', KEYS[move[1]])
  local before, after = move[2], move[3]
  for i = 1, #flat, 2 do
    local name = flat[i]
    if string.byte(name, 1) == 112 and string.byte(name, 2) == 58 then  -- 'p:', a product: 2 * units + bought
      local v = tonumber(flat[i + 1])
      local units = (v - v % 2) / 2
      if before > 0 then add(before, name, -units) end
      add(after, name, units)
    end
  end
end
for _, entry in ipairs(p.products) do
  local values = entry[2]
  for i = 1, #values, 2 do add(entry[1], 'p:' .. values[i], values[i + 1]) end
end
local buckets = {}
local changed = {}
for base, per in pairs(net) do
  for name, units in pairs(per) do
    if units ~= 0 then
      local bucket = buckets[name]
      if not bucket then
        bucket = product_bucket(name, 3)
        buckets[name] = bucket
      end
      local flat = changed[base + bucket]
      if not flat then flat = {}; changed[base + bucket] = flat end
      flat[#flat + 1] = string.sub(name, 3)
      flat[#flat + 1] = units
    end
  end
end
for index, flat in pairs(changed) do add_to_fields(KEYS[index], flat) end

for _, entry in ipairs(p.members) do chunked('HSET', KEYS[entry[1]], entry[2], 2) end
for _, entry in ipairs(p.records) do chunked('HSET', KEYS[entry[1]], entry[2], 2) end
if #p.index_add > 0 then chunked('SADD', KEYS[2], p.index_add, 1) end
for _, entry in ipairs(p.seen) do chunked('SADD', KEYS[entry[1]], entry[2], 1) end

if p.guest_lines > 0 then
  local new = 0
  for _, entry in ipairs(p.guest_invoices) do
    local values = entry[2]
    for i = 1, #values, 500 do
      new = new + redis.call('SADD', KEYS[entry[1]], unpack(values, i, math.min(i + 499, #values)))
    end
  end
  redis.call('HINCRBY', KEYS[3], 'lines', p.guest_lines)
  redis.call('HINCRBY', KEYS[3], 'amount_nanos', p.guest_amount_nanos)
  redis.call('HINCRBY', KEYS[3], 'invoices', new)
end
-- last: day sets that fell out of the retention (this batch may have added to them too)
for _, index in ipairs(p.drop) do redis.call('DEL', KEYS[index]) end
if #p.stats > 0 then
  redis.call('DEL', KEYS[4])
  chunked('HSET', KEYS[4], p.stats, 2)
end
for _, entry in ipairs(p.day_stats) do
  redis.call('DEL', KEYS[entry[1]])
  chunked('HSET', KEYS[entry[1]], entry[2], 2)
end
for _, index in ipairs(p.day_stats_drop) do redis.call('DEL', KEYS[index]) end
for name, delta in pairs(p.counters) do redis.call('HINCRBY', KEYS[5], name, delta) end
for i, box in ipairs(p.outbox) do
  local key = KEYS[5 + i]
  if box[1] > 0 then redis.call('LTRIM', key, box[1], -1) end
  if #box[2] > 0 then chunked('RPUSH', key, box[2], 1) end
end
redis.call('HSET', checkpoint, 'offset', p.offset, 'clock', p.clock)
if p.swept ~= '' then redis.call('HSET', checkpoint, 'swept', p.swept, 'pass', p.pass) end
return {1, '', 0}
"""
)

_CLAIM = """
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local v = redis.call('HMGET', KEYS[1], 'offset', 'clock', 'generation', 'topic', 'swept', 'reset', 'pass')
if v[4] and v[4] ~= ARGV[1] then return {-1, v[4]} end
if not v[4] then redis.call('HSET', KEYS[1], 'topic', ARGV[1]) end
if v[6] then redis.call('HDEL', KEYS[1], 'reset') end
return {epoch, v[1] or '', v[2] or '', v[3] or '0', v[5] or '', v[6] or '', v[7] or ''}
"""

_GENERATION = """
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if epoch ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'generation', ARGV[2])
return 1
"""

OUTBOXES = ("changes", "observations", "dead-letters")


@dataclass
class PartitionCommit:
    """Everything one batch changes in one partition, gathered in memory and written at once."""

    partition: int
    offset: int = 0
    clock: int = NO_TIME  # event time the partition has reached at ``offset`` (µs)
    swept: int = NO_TIME  # tick of the partition's last sweep pass (sweep_ticks), if this batch swept
    records: dict[str, dict[str, str | bytes]] = field(default_factory=dict)  # customer -> record fields
    index_add: list[str] = field(default_factory=list)
    members: dict[str, dict[str, int]] = field(default_factory=dict)  # customer -> field -> its new value
    moves: list[tuple[str, int, int]] = field(default_factory=list)  # customer, segment before (-1), after
    products: dict[int, dict[str, int]] = field(default_factory=dict)  # segment -> stock code -> units
    seen: dict[str, list[tuple[int, str]]] = field(default_factory=dict)  # day -> dedup entries (shared.state.dedup)
    seen_drop: list[str] = field(default_factory=list)  # days whose sets expire
    guest_lines: int = 0
    guest_amount_nanos: int = 0  # integer nano-pounds (shared.state.guests): sums that do not depend on batching
    guest_invoices: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # day -> invoices
    guest_drop: list[str] = field(default_factory=list)
    stats: dict[str, str] = field(default_factory=dict)  # the latest sweep's statistics
    day_stats: dict[int, dict[str, str]] = field(default_factory=dict)  # tick -> statistics after that pass
    day_stats_drop: list[int] = field(default_factory=list)  # ticks whose statistics are no longer needed
    counters: dict[str, int] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # segment-change JSON, in order
    observations: list[str] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)

    def count(self, name: str, n: int = 1) -> None:
        if n:
            self.counters[name] = self.counters.get(name, 0) + n

    def outbox(self, kind: str) -> list[str]:
        return {"changes": self.changes, "observations": self.observations, "dead-letters": self.dead_letters}[kind]


@dataclass(frozen=True)
class Claim:
    """What a new owner of a partition finds: its epoch and where the partition stands."""

    epoch: int
    offset: int  # -1: nothing applied yet
    clock: str  # ISO, "" before any
    generation: int
    swept: str  # ISO midnight of the last daily sweep, "" before any
    reset: bool  # the stream position was set on purpose since the last owner (a bootstrap, reset-offsets)
    sweep_pass: int  # the last pass done of that sweep (0: unknown, taken as the last)


class Checkpoint:
    """Runs the commit, claim and generation scripts; registered once per client."""

    def __init__(self, client: redis.Redis, keys: Keys, topic: str) -> None:
        self.client = client
        self.keys = keys
        self.topic = topic
        self._commit = client.register_script(_COMMIT)
        self._claim = client.register_script(_CLAIM)
        self._generation = client.register_script(_GENERATION)

    def claim(self, partition: int) -> Claim:
        """Take ownership: a new epoch fences every earlier owner out."""
        reply = self._claim(keys=[self.keys.checkpoint(partition)], args=[self.topic])
        if int(reply[0]) < 0:
            raise ConfigError(
                f"partition {partition}: the state under Redis prefix {self.keys.prefix!r} belongs to topic "
                f"{reply[1]!r}, not {self.topic!r}; use another SEG_REDIS__KEY_PREFIX or the right SEG_TOPICS__INVOICES"
            )
        epoch, offset, clock, generation, swept, reset, sweep_pass = reply
        return Claim(
            int(epoch), int(offset) if offset else -1, clock, int(generation), swept, bool(reset), int(sweep_pass or 0)
        )

    def set_generation(self, partition: int, epoch: int, generation: int) -> None:
        if not self._generation(keys=[self.keys.checkpoint(partition)], args=[epoch, generation]):
            raise FencedError(partition, -1, "another worker claimed it")

    def commit(self, commit: PartitionCommit, epoch: int, expect: int, trims: dict[str, int]) -> None:
        """Apply ``commit`` atomically, or raise :class:`FencedError` and apply nothing.

        ``expect`` is the offset the batch starts from (-1: none applied yet);
        ``trims`` says how many entries at the head of each outbox were sent.
        """
        p, keys = commit.partition, self.keys
        names = [keys.checkpoint(p), keys.customers(p), keys.guests(p), keys.stats(p), keys.counters(p)]
        names += [keys.outbox(p, kind) for kind in OUTBOXES]
        index: dict[str, int] = {}

        def key(name: str) -> int:
            if name not in index:
                names.append(name)
                index[name] = len(names)
            return index[name]

        segments: dict[int, int] = {}

        def segment(number: int) -> int:
            """The KEYS index of the segment's first popularity bucket (the others follow it)."""
            if number not in segments:
                first, *rest = keys.products(p, number)
                segments[number] = key(first)
                for name in rest:
                    key(name)
            return segments[number]

        seen_names = {day: keys.seen(p, day) for day in commit.seen}  # a day's sixteen set names, named once
        payload = {
            "epoch": epoch,
            "expect": expect,
            "offset": commit.offset,
            "clock": iso(commit.clock),
            "swept": iso(day_start(commit.swept)) if commit.swept != NO_TIME else "",
            "pass": commit.swept - day_start(commit.swept) if commit.swept != NO_TIME else 0,
            "moves": [
                [
                    key(keys.members(p, cid)),
                    segment(before) if before >= 0 else 0,
                    segment(after),
                ]
                for cid, before, after in commit.moves
            ],
            "products": [
                [segment(number), [x for code, n in units.items() for x in (code, n)]]
                for number, units in commit.products.items()
            ],
            "members": [
                [key(keys.members(p, cid)), [x for name, n in values.items() for x in (name, str(n))]]
                for cid, values in commit.members.items()
            ],
            "records": [
                [key(keys.customer(p, cid)), [x for kv in fields.items() for x in kv]]  # bytes unpack as Lua strings
                for cid, fields in commit.records.items()
            ],
            "index_add": commit.index_add,
            "seen": [
                [key(seen_names[day][bucket]), members]
                for day, remembered in commit.seen.items()
                for bucket, members in sorted(by_bucket(remembered).items())
            ],
            "drop": [key(name) for day in commit.seen_drop for name in keys.seen(p, day)]
            + [key(keys.guest_invoices(p, day)) for day in commit.guest_drop],
            "guest_lines": commit.guest_lines,
            "guest_amount_nanos": commit.guest_amount_nanos,
            "guest_invoices": [
                [key(keys.guest_invoices(p, day)), sorted(set(ids))] for day, ids in commit.guest_invoices.items()
            ],
            "stats": [x for kv in commit.stats.items() for x in kv],
            "day_stats": [
                [key(keys.sweep_stats(p, tick)), [x for kv in mapping.items() for x in kv]]
                for tick, mapping in commit.day_stats.items()
            ],
            "day_stats_drop": [
                key(keys.sweep_stats(p, tick)) for tick in commit.day_stats_drop if tick not in commit.day_stats
            ],
            "counters": commit.counters,
            "outbox": [[trims.get(kind, 0), commit.outbox(kind)] for kind in OUTBOXES],
        }
        ok, reason, stored = self._commit(keys=names, args=[script_argument(payload)])
        if not ok:
            raise FencedError(p, int(stored), f"its {reason} moved (stored {reason} {stored})")
