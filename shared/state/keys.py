"""The Redis keyspace, in one place, so bootstrapper, worker, drift monitor and tools agree.

Every key starts with the configured prefix (``SEG_REDIS__KEY_PREFIX``). Keys are
partitioned like the invoices topic: everything a batch of partition *n* writes
carries the hash tag ``{pn}``, so one Lua script per partition commits it
atomically on a single Redis and on a Redis Cluster alike (a script may only touch
keys of one slot). The model's keys share the tag ``{model}`` and the drift
monitor's the tag ``{drift}``, because each set is switched in one transaction.

Per partition *n* (``{pn}``):

=====================================  ======  ==============================================
key                                    type    holds
=====================================  ======  ==============================================
``{pn}:checkpoint``                    hash    ``offset`` (next offset to apply), ``clock``
                                               (event time reached, ISO), ``epoch`` (owner
                                               fencing token), ``generation`` (sequence
                                               generation, bumped when Redis went back),
                                               ``topic``, ``swept`` and ``pass`` (the last
                                               sweep's midnight and pass), ``reset``
``{pn}:customers``                     set     the partition's customer ids (its index)
``{pn}:customer:{id}``                 hash    the customer record (bounded size, every
                                               value at most 64 characters: a listpack):
                                               ``a0`` … ``a3`` (the aggregates, 192 packed
                                               bytes in base64) and ``country``; ``f0``,
                                               ``f1`` and ``v0``, ``v1`` (features and vector,
                                               twelve doubles each in base64: what ``segment``
                                               was decided on), ``as_of`` (ISO), ``segment``
                                               (assigned), ``published``, ``published_at``,
                                               ``seq``, ``pending`` (inactivity switch being
                                               confirmed); see :mod:`shared.state.customer_record`
``{pn}:members:{id}``                  hash    what grows with the customer's history:
                                               ``i:{invoice}`` -> 1 per invoice;
                                               ``p:{stock code}`` -> 2 × net units + 1 if
                                               bought (0 if only returned)
``{pn}:seen:{day}:{b}``                set     event ids of one event day as 64-bit
                                               digests (intsets; ``b`` 0 … 15 by the
                                               digest, :mod:`shared.state.dedup`); dropped
                                               after ``SEG_WORKER_DEDUP_RETENTION_DAYS``
``{pn}:guests``                        hash    ``lines``, ``amount_nanos`` (nano-pounds),
                                               ``invoices``
``{pn}:guest-invoices:{day}``          set     guest invoice numbers of one event day
``{pn}:stats``                         hash    the model statistics of the partition's
                                               customers (``count:{id}``, ``sum:{id}:{dim}``
                                               in fixed point) after the last sweep's last
                                               pass, ``as_of`` (that midnight),
                                               ``version`` (model version)
``{pn}:stats:{day}:{pass}``            hash    the same after each pass of the sweep at
                                               midnight ``day``, for the last eight days
                                               (the centroids of a pass are every
                                               partition's after the pass before)
``{pn}:products:{segment}:{b}``        hash    stock code -> net units of the partition's
                                               customers whose published segment it is,
                                               for the codes of bucket ``b`` (0 … 15,
                                               :func:`product_bucket`): sixteen small
                                               listpacks instead of one sorted set
``{pn}:counters``                      hash    worker counters (lines by kind, sweeps, …)
``{pn}:outbox:changes``                list    segment changes committed, maybe not sent
``{pn}:outbox:observations``           list    drift observations committed, maybe not sent
``{pn}:outbox:dead-letters``           list    dead letters committed, maybe not sent
=====================================  ======  ==============================================

The model (``{model}``): ``{model}:v{n}`` (snapshot JSON, immutable), ``{model}:current``
(live version), ``{model}:stats`` (the bootstrap's or refit's statistics, used until
every partition has its own), ``{model}:cutoff`` (ISO end of the bootstrap history),
``{model}:bootstrap`` (JSON summary of the last bootstrap, with the partition count the
state was laid out for), ``{model}:drift-reference`` (reference invoices JSON, zlib-compressed in base64),
``{model}:drift-scorings`` (the customers scored in the reference window's last days,
with their raw features as of each scoring, the same way: the segment family's reference).

The drift monitor (``{drift}``): ``{drift}:state``, ``{drift}:alerts`` (recent, newest
first), ``{drift}:incidents`` (incident id -> latest alert, open ones), ``{drift}:outbox``.

Readers of per-partition shares (product popularity, guests, counters, model
statistics, clocks) sum or combine them over partitions ``0 … partitions - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.features.clock import day_start, from_micros
from shared.state.dedup import SEEN_BUCKETS

PRODUCT_BUCKETS = 16
"""Popularity hashes per (partition, segment). A segment's share of a partition holds up to a few thousand
stock codes; one sorted set of that size is a skiplist (about 100 bytes per code), while sixteen hashes
of up to 512 codes each stay listpacks (about 14 bytes per code) on Redis's default settings."""

# The same function in Lua, for the commit script (it moves a customer's units between segments
# from its members hash, so it buckets codes the worker never sent); tests check both agree.
# ``first``: where the code starts in the text (3 for a members field ``p:<code>``, without copying it).
PRODUCT_BUCKET_LUA = f"""
local function product_bucket(code, first)
  local h = 0
  for i = first or 1, #code do h = (h * 31 + string.byte(code, i)) % 1000003 end
  return h % {PRODUCT_BUCKETS}
end
"""


def product_bucket(stock_code: str) -> int:
    """The popularity hash a stock code lives in: a polynomial hash of its UTF-8 bytes (the Lua twin's)."""
    h = 0
    for byte in stock_code.encode():
        h = (h * 31 + byte) % 1_000_003
    return h % PRODUCT_BUCKETS


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    # -- per partition --------------------------------------------------------------------------
    def tag(self, partition: int) -> str:
        return f"{self.prefix}{{p{partition}}}"

    def checkpoint(self, partition: int) -> str:
        return f"{self.tag(partition)}:checkpoint"

    def customers(self, partition: int) -> str:
        return f"{self.tag(partition)}:customers"

    def customer(self, partition: int, customer_id: str) -> str:
        return f"{self.tag(partition)}:customer:{customer_id}"

    def members(self, partition: int, customer_id: str) -> str:
        return f"{self.tag(partition)}:members:{customer_id}"

    def seen(self, partition: int, day: str) -> list[str]:
        """The day's dedup sets of the partition, in bucket order (:mod:`shared.state.dedup`)."""
        return [f"{self.tag(partition)}:seen:{day}:{bucket}" for bucket in range(SEEN_BUCKETS)]

    def guests(self, partition: int) -> str:
        return f"{self.tag(partition)}:guests"

    def guest_invoices(self, partition: int, day: str) -> str:
        return f"{self.tag(partition)}:guest-invoices:{day}"

    def stats(self, partition: int) -> str:
        return f"{self.tag(partition)}:stats"

    def sweep_stats(self, partition: int, tick: int) -> str:
        """The partition's statistics after one pass of a daily sweep; ``tick``: its midnight (µs) + the pass number."""
        midnight = day_start(tick)
        return f"{self.tag(partition)}:stats:{from_micros(midnight).date().isoformat()}:{tick - midnight}"

    def products(self, partition: int, segment: int) -> list[str]:
        """The segment's popularity share of the partition: one hash per bucket, in bucket order."""
        return [f"{self.tag(partition)}:products:{segment}:{bucket}" for bucket in range(PRODUCT_BUCKETS)]

    def counters(self, partition: int) -> str:
        return f"{self.tag(partition)}:counters"

    def outbox(self, partition: int, kind: str) -> str:
        """``kind``: ``changes``, ``observations`` or ``dead-letters``."""
        return f"{self.tag(partition)}:outbox:{kind}"

    # -- the model --------------------------------------------------------------------------
    @property
    def _model(self) -> str:
        return f"{self.prefix}{{model}}"

    def model(self, version: int) -> str:
        return f"{self._model}:v{version}"

    @property
    def model_current(self) -> str:
        return f"{self._model}:current"

    @property
    def model_stats(self) -> str:
        return f"{self._model}:stats"

    @property
    def cutoff(self) -> str:
        return f"{self._model}:cutoff"

    @property
    def bootstrap_meta(self) -> str:
        return f"{self._model}:bootstrap"

    @property
    def drift_reference(self) -> str:
        return f"{self._model}:drift-reference"

    @property
    def drift_scorings(self) -> str:
        return f"{self._model}:drift-scorings"

    # -- the drift monitor ----------------------------------------------------------------------
    @property
    def _drift(self) -> str:
        return f"{self.prefix}{{drift}}"

    @property
    def drift_state(self) -> str:
        return f"{self._drift}:state"

    @property
    def drift_alerts(self) -> str:
        return f"{self._drift}:alerts"

    @property
    def drift_incidents(self) -> str:
        return f"{self._drift}:incidents"

    @property
    def drift_outbox(self) -> str:
        return f"{self._drift}:outbox"
