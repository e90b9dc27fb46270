"""The Redis keyspace, in one place, so bootstrapper, worker and tools agree.

Every key starts with the configured prefix (``SEG_REDIS__KEY_PREFIX``).

================================  ======  ===================================================
key                               type    holds
================================  ======  ===================================================
``customer:{id}``                 hash    ``agg`` (aggregates JSON), ``features`` (JSON),
                                          ``as_of`` (ISO event time of ``features``),
                                          ``vector`` (scaled vector counted in the model
                                          statistics, JSON), ``segment`` (assigned id),
                                          ``published`` (published id), ``seq`` (last
                                          segment-change sequence number)
``customers``                     set     every customer id with a record
``model:v{n}``                    string  model snapshot JSON, immutable once written
``model:current``                 string  version number of the live model (atomic switch)
``model:stats``                   hash    the bootstrap's per-segment ``sum:{id}:{dim}`` and
                                          ``count:{id}``
``model:stats:p{n}``              hash    the same for the customers of partition n, written
                                          whole by its worker, plus ``as_of`` (last sweep)
``bootstrap:cutoff``              string  ISO event time where the bootstrap history ends
``bootstrap:meta``                string  JSON summary of the last bootstrap run
``guests``                        hash    ``lines``, ``amount`` of guest checkouts
``guests:invoices``               set     guest invoice numbers
``offsets:{topic}``               hash    partition -> next offset to consume
``watermark``                     string  ISO event-time watermark of the stream
``drift:state``                   hash    ``offset`` (next drift-observations offset),
                                          ``state`` (drift monitor JSON: engine, sources)
``drift:alerts``                  list    recent drift alerts JSON, newest first
``drift:incidents``               hash    incident id -> latest alert JSON, open ones only
``drift:outbox``                  list    alerts committed but maybe not yet published
``drift:reference``               string  reference invoice table JSON (bootstrap window), on
                                          which the invoice-behaviour thresholds are calibrated
``segment:{id}:products``         zset    StockCode -> net units bought by the customers
                                          whose published segment is {id} (returns
                                          negative; members at 0 are removed)
================================  ======  ===================================================
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix."""

    prefix: str

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}customer:{customer_id}"

    @property
    def customers(self) -> str:
        return f"{self.prefix}customers"

    def model(self, version: int) -> str:
        return f"{self.prefix}model:v{version}"

    @property
    def model_current(self) -> str:
        return f"{self.prefix}model:current"

    @property
    def model_stats(self) -> str:
        return f"{self.prefix}model:stats"

    def partition_stats(self, partition: int) -> str:
        return f"{self.prefix}model:stats:p{partition}"

    @property
    def partition_stats_pattern(self) -> str:
        return f"{self.prefix}model:stats:p*"

    @property
    def cutoff(self) -> str:
        return f"{self.prefix}bootstrap:cutoff"

    @property
    def bootstrap_meta(self) -> str:
        return f"{self.prefix}bootstrap:meta"

    @property
    def guests(self) -> str:
        return f"{self.prefix}guests"

    @property
    def guest_invoices(self) -> str:
        return f"{self.prefix}guests:invoices"

    def offsets(self, topic: str) -> str:
        return f"{self.prefix}offsets:{topic}"

    @property
    def watermark(self) -> str:
        return f"{self.prefix}watermark"

    @property
    def drift_state(self) -> str:
        return f"{self.prefix}drift:state"

    @property
    def drift_alerts(self) -> str:
        return f"{self.prefix}drift:alerts"

    @property
    def drift_incidents(self) -> str:
        return f"{self.prefix}drift:incidents"

    @property
    def drift_reference(self) -> str:
        return f"{self.prefix}drift:reference"

    @property
    def drift_outbox(self) -> str:
        return f"{self.prefix}drift:outbox"

    def segment_products(self, segment_id: int) -> str:
        return f"{self.prefix}segment:{segment_id}:products"

    @property
    def segment_products_pattern(self) -> str:
        return f"{self.prefix}segment:*:products"
