"""What a chaos run left, and how it differs from a calm run of the same stream: one row of the chaos table.

A run is observed through what consumers and operators see: the whole state in
Redis (:func:`tests.pipeline.state`), every message on the segment-change topic in
the order a consumer reads it, and the worker's dead letters. Against the calm run:

* keys ≠ calm: state keys whose value differs (customer records and members,
  popularity, guests, statistics, dedup sets, checkpoints);
* missing: a calm change (its payload without the sequence number) that the run
  never published;
* extra: a change the calm run did not publish;
* duplicated: a message repeating a (customer, sequence) already read, with the same
  bytes (expected after a crash; consumers drop it by that pair);
* re-sent: after Redis lost commits, a change published again under the next
  sequence generation (the same payload, a larger sequence number);
* out of sequence: a new (customer, sequence) read after a larger sequence of the
  same customer;
* conflicting: a (customer, sequence) carrying two different payloads;
* latest ≠ Redis: a customer whose last change on the topic is not what its record
  in Redis says it published.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson
import redis

from harness.compare import raw_changes, state
from shared.kafka_clients import read_to_end
from shared.settings import Settings
from shared.state.keys import Keys
from tests.pipeline import records

WORKER_STAGES = ("decode", "apply")


@dataclass(frozen=True)
class Observed:
    """What one run left: its state by key (prefix removed), its changes in topic order, its dead letters."""

    state: dict[str, object]
    changes: list[tuple[str, int, bytes]]
    published: dict[str, tuple[int, int]]
    dead_letters: list[str]


@dataclass(frozen=True)
class Row:
    """One line of the chaos table."""

    scenario: str
    customers: int
    mismatched_keys: int
    missing: int
    extra: int
    duplicated: int
    resent: int
    out_of_sequence: int
    conflicting: int
    latest_differs: int
    dead_letters: int
    expected_dead_letters: int
    seconds: float
    details: list[str] = field(default_factory=list, compare=False)  # what differs, for the scenario's log

    @property
    def clean(self) -> bool:
        """No loss, no mismatch, no dead letter but the expected ones."""
        losses = (self.mismatched_keys, self.missing, self.extra, self.out_of_sequence, self.conflicting)
        return not any(losses) and not self.latest_differs and self.dead_letters == self.expected_dead_letters


def observe(settings: Settings, client: redis.Redis) -> Observed:
    """Read back one run: Redis under its prefix, its segment-change and dead-letter topics."""
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    dump = {key.removeprefix(keys.prefix): value for key, value in state(client, keys, partitions).items()}
    published = {cid: (record.seq, record.published) for cid, record in records(client, keys, partitions).items()}
    letters = [orjson.loads(r.value) for r in read_to_end(settings.kafka, settings.topics.dead_letter)]
    reasons = [letter["reason"] for letter in letters if letter["stage"] in WORKER_STAGES]
    return Observed(dump, list(raw_changes(settings)), published, reasons)


def _without(dump: dict[str, object], field: str, kind: str) -> dict[str, object]:
    """``dump`` with ``field`` left out of every hash whose key has ``:{kind}`` in it."""
    out: dict[str, object] = {}
    for key, value in dump.items():
        if f":{kind}" in key and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != field}
        out[key] = value
    return out


def _payload(value: bytes) -> bytes:
    """A change without its sequence number: what a re-sent change shares with the first."""
    event = orjson.loads(value)
    del event["sequence"]
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def _by_sequence(changes: list[tuple[str, int, bytes]]) -> dict[str, list[bytes]]:
    """Each customer's payloads in sequence order, each (customer, sequence) once (the first read)."""
    first: dict[str, dict[int, bytes]] = defaultdict(dict)
    for customer, sequence, value in changes:
        first[customer].setdefault(sequence, value)
    return {c: [_payload(first[c][s]) for s in sorted(first[c])] for c in first}


def compare(
    scenario: str,
    calm: Observed,
    run: Observed,
    seconds: float,
    expected_dead_letters: int = 0,
    offsets_differ: bool = False,
    generations_differ: bool = False,
) -> Row:
    """The row of ``run`` against ``calm``.

    ``offsets_differ``: the run's stream holds extra records (poison), so the
    checkpoints' offsets are not compared. ``generations_differ``: Redis lost
    commits, so the records' sequence numbers moved to a new generation and are
    checked against the topic (latest ≠ Redis) instead of the calm run's.
    """
    mine, theirs = calm.state, run.state
    if offsets_differ:
        mine, theirs = _without(mine, "offset", "checkpoint"), _without(theirs, "offset", "checkpoint")
    if generations_differ:
        mine, theirs = _without(mine, "seq", "customer:"), _without(theirs, "seq", "customer:")
    differing = sorted(key for key in mine.keys() | theirs.keys() if mine.get(key) != theirs.get(key))
    details = [f"key {key}: calm {mine.get(key)!r} | run {theirs.get(key)!r}" for key in differing]
    customers = {key.rpartition(":")[2] for key in mine.keys() | theirs.keys() if ":customer:" in key}

    seen: dict[tuple[str, int], bytes] = {}
    highest: dict[str, int] = {}
    duplicated = conflicting = out_of_sequence = 0
    conflicted: set[tuple[str, int]] = set()
    for customer, sequence, value in run.changes:
        pair = (customer, sequence)
        if pair in seen:
            if seen[pair] == value:
                duplicated += 1
            elif pair not in conflicted:
                conflicted.add(pair)
                conflicting += 1
            continue
        seen[pair] = value
        if sequence < highest.get(customer, 0):
            out_of_sequence += 1
        highest[customer] = max(sequence, highest.get(customer, 0))

    expected, got = _by_sequence(calm.changes), _by_sequence(run.changes)
    missing = extra = resent = 0
    for customer in expected.keys() | got.keys():
        first_time: list[bytes] = []
        for payload in got.get(customer, []):
            if payload in first_time:
                resent += 1
            else:
                first_time.append(payload)
        wanted, have = Counter(expected.get(customer, [])), Counter(first_time)
        missing += sum((wanted - have).values())
        extra += sum((have - wanted).values())
        details += [f"missing {payload.decode()}" for payload in wanted - have]
        details += [f"extra {payload.decode()}" for payload in have - wanted]
        if not (wanted - have) and not (have - wanted) and first_time != expected.get(customer, []):
            out_of_sequence += 1  # the same changes, in another order

    latest_differs = 0
    for customer, sequence in highest.items():
        current = orjson.loads(seen[(customer, sequence)])["current"]["id"]
        if run.published.get(customer) != (sequence, current):
            latest_differs += 1
    return Row(
        scenario,
        len(customers),
        len(differing),
        missing,
        extra,
        duplicated,
        resent,
        out_of_sequence,
        conflicting,
        latest_differs,
        len(run.dead_letters),
        expected_dead_letters,
        seconds,
        details,
    )
