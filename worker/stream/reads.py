"""What one step reads from Redis, in one round trip.

* which of the step's event ids were applied already (dedup, per partition and day,
  as :mod:`shared.state.dedup` remembers them);
* for each customer line, the stored values of its invoice's and product's fields
  among the customer's members (an invoice seen, a product's units and whether it
  was bought), so distinct counts stay exact while the sets themselves stay in
  Redis, and the commit writes the new values without reading them again;
* the live model version, the model's own statistics, and other workers'
  partitions' statistics at the midnights the step crosses (every partition's
  count in the centroids of a day).

The membership and dedup questions of a partition go to Redis as one script call
with one msgpack argument and come back as one string (flags, then values): a command per
customer would cost more to encode and parse than the worker spends on the lines.
The script declares every key it reads (one partition's: one hash slot).

The commit of the previous step may still be landing while this one reads
(:mod:`worker.stream.inflight`): what it adds is passed in as ``landing`` and
counts as already there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import redis

from shared.features.clock import MICROS_PER_DAY, NO_TIME, to_micros
from shared.state.dedup import by_bucket
from shared.state.keys import Keys
from worker.stream.checkpoint import script_argument
from worker.stream.decode import Records
from worker.stream.grouping import groups
from worker.stream.line_kinds import product_mask

# The reply: a flag per asked dedup id ('1' applied, '0' not), then a comma and each asked members
# field's stored value ('' if absent), comma-separated: the worker adds its lines to these values.
_ASK = """
local p = cmsgpack.unpack(ARGV[1])
local seen = {}
for _, entry in ipairs(p.seen) do
  local key, ids = KEYS[entry[1]], entry[2]
  for i = 1, #ids, 500 do
    local flags = redis.call('SMISMEMBER', key, unpack(ids, i, math.min(i + 499, #ids)))
    for _, flag in ipairs(flags) do seen[#seen + 1] = (flag == 1) and '1' or '0' end
  end
end
local values = {}
for _, entry in ipairs(p.members) do
  local key, fields = KEYS[entry[1]], entry[2]
  for i = 1, #fields, 500 do
    local got = redis.call('HMGET', key, unpack(fields, i, math.min(i + 499, #fields)))
    for j = 1, #got do values[#values + 1] = got[j] or '' end
  end
end
return table.concat(seen) .. ',' .. table.concat(values, ',')
"""

_EPOCH_DAY = date(1970, 1, 1)
_DAY_KEYS: dict[int, str] = {}


def day_key(day: int) -> str:
    """``YYYY-MM-DD`` of a day number (days since 1970), memoised: a batch spans a few days."""
    text = _DAY_KEYS.get(day)
    if text is None:
        text = _DAY_KEYS[day] = (_EPOCH_DAY + timedelta(days=day)).isoformat()
    return text


def event_day(micros: int) -> str:
    return day_key(micros // MICROS_PER_DAY)


@dataclass
class Landing:
    """What the commit in flight adds; Redis does not show it yet."""

    seen: set[str] = field(default_factory=set)  # dedup members (digests, shared.state.dedup)
    members: dict[str, dict[str, int]] = field(default_factory=dict)  # customer -> members field -> value written


@dataclass
class StepReads:
    entries: list[tuple[int, str]]  # each record's dedup entry (bucket, member), in record order
    seen: set[str]  # the members already applied
    stored: dict[str, dict[str, int]]  # customer -> members field -> its value, for the fields asked and present
    model_version: int | None
    day_stats: dict[tuple[int, int], dict[str, str]]  # (partition, sweep tick) -> its statistics after it
    model_stats: dict[str, str]


@dataclass
class _Question:
    """What one partition's script call asks, in the order of its flags."""

    keys: list[str] = field(default_factory=list)
    seen: list[tuple[int, list[str]]] = field(default_factory=list)  # dedup set, members (digests)
    members: list[tuple[int, list[str]]] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)  # the customer of each members entry

    def key(self, name: str) -> int:
        self.keys.append(name)
        return len(self.keys)

    def payload(self) -> bytes:
        return script_argument({"seen": self.seen, "members": self.members})


def _questions(keys: Keys, records: Records, remembered: list[tuple[int, str]]) -> dict[int, _Question]:
    questions: dict[int, _Question] = {}
    partitions = records.partition
    days = records.time // MICROS_PER_DAY
    for rows in groups(partitions, days):
        partition, day = int(partitions[rows[0]]), int(days[rows[0]])
        question = questions.setdefault(partition, _Question())
        sets = keys.seen(partition, day_key(day))
        for bucket, members in sorted(by_bucket(remembered[row] for row in rows.tolist()).items()):
            question.seen.append((question.key(sets[bucket]), members))
    wanted: dict[tuple[int, str], dict[str, None]] = {}
    asked = np.flatnonzero(
        (records.price > 0) & product_mask(records.stock_code) & np.not_equal(records.customer_id, None)
    )
    for partition, cid, invoice, code in zip(
        partitions[asked].tolist(),
        records.customer_id[asked].tolist(),
        records.invoice_no[asked].tolist(),
        records.stock_code[asked].tolist(),
        strict=True,
    ):
        names = wanted.setdefault((partition, cid), {})
        names["i:" + invoice] = None
        names["p:" + code] = None
    for (partition, cid), names in wanted.items():
        question = questions.setdefault(partition, _Question())
        question.members.append((question.key(keys.members(partition, cid)), list(names)))
        question.customers.append(cid)
    return questions


class StepReader:
    """Asks Redis what a step needs to know; the script is registered once per client."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._ask = client.register_script(_ASK)

    def progress(self, partitions: Iterable[int]) -> dict[int, tuple[int, int]]:
        """Each partition's last sweep: its midnight (NO_TIME before any) and pass (0 if not recorded)."""
        numbers = sorted(partitions)
        pipe = self.client.pipeline(transaction=False)
        for partition in numbers:
            pipe.hmget(self.keys.checkpoint(partition), "swept", "pass")
        out = {}
        for partition, (swept, sweep_pass) in zip(numbers, pipe.execute(), strict=True):
            out[partition] = (to_micros(datetime.fromisoformat(swept)) if swept else NO_TIME, int(sweep_pass or 0))
        return out

    def read(
        self,
        records: Records,
        day_stats: Iterable[tuple[int, int]],
        landing: Landing,
        answered: Callable[[], None] = lambda: None,
    ) -> StepReads:
        """One round trip for everything the step needs to know; ``day_stats``: (partition, sweep tick) wanted.

        ``answered`` is called once the answers are in (the commit in flight may go to Redis then).
        """
        keys = self.keys
        remembered = list(zip(records.seen_bucket.tolist(), records.seen_member.tolist(), strict=True))
        questions = _questions(keys, records, remembered)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(keys.model_current)
        pipe.hgetall(keys.model_stats)
        wanted = sorted(day_stats)
        for partition, tick in wanted:
            pipe.hgetall(keys.sweep_stats(partition, tick))
        asked = sorted(questions.items())
        # A cluster pipeline refuses scripts (redis-py): there each partition's script is its own call.
        clustered = isinstance(self.client, redis.RedisCluster)
        for _, question in [] if clustered else asked:
            self._ask(keys=question.keys, args=[question.payload()], client=pipe)
        replies = pipe.execute()
        if clustered:
            replies += [self._ask(keys=question.keys, args=[question.payload()]) for _, question in asked]
        answered()
        version, model_stats = replies[0], replies[1]
        stats = {entry: raw for entry, raw in zip(wanted, replies[2 : 2 + len(wanted)], strict=True) if raw}
        seen: set[str] = set(landing.seen)
        stored: dict[str, dict[str, int]] = {}
        for (_, question), reply in zip(asked, replies[2 + len(wanted) :], strict=True):
            flags, _, values = (reply.decode() if isinstance(reply, bytes) else reply).partition(",")
            # One pass over each: every zip takes as many as its names, which come first, so it
            # stops before taking one more.
            answers = iter(flags)
            for _, members in question.seen:
                seen.update(member for member, flag in zip(members, answers, strict=False) if flag == "1")
            answers = iter(values.split(","))
            for cid, (_, names) in zip(question.customers, question.members, strict=True):
                known = {name: int(value) for name, value in zip(names, answers, strict=False) if value}
                written = landing.members.get(cid)
                if written:  # the commit in flight wrote these after the read's snapshot
                    known.update(written)
                stored[cid] = known
        return StepReads(
            entries=remembered,
            seen=seen,
            stored=stored,
            model_version=int(version) if version is not None else None,
            day_stats=stats,
            model_stats=model_stats,
        )
