"""The peer in the worker benchmark: the same per-customer fold written as a Quix Streams app.

Why a peer: the raw consume loop says what the client library costs; a stream
processor doing the same job says whether the worker's design earns its keep. This
app reads the invoices topic with Quix Streams' defaults where they fit (JSON values,
RocksDB state backed by a changelog topic, at-least-once) and folds each customer's
lines, units, gross spend, cancellations, distinct purchase invoices and products,
and first and last purchase. The sets are kept exactly, as state keys per member,
and lines are deduplicated by event id like the worker does (in the same state, so a
record redelivered after a crash, as at-least-once allows, is not counted twice).
Guests and lines with a price of zero or less are skipped, as the worker skips them
for customer state. Values are the dicts of Quix's JSON deserializer: no schema
validation, no dead letters (less work than the worker does per record).

It runs in its own virtualenv (``bench/requirements-quix.txt``: Quix pins pydantic
below the project's), as a child of :mod:`bench.worker_bench`, and prints one JSON
line: records, records/s from the first record processed until the app has
committed the last one's state and closed (closing adds about 0.2 s), and the
final aggregates of the ``--sample`` customers.

What Tansu needs, all on the client side:

* ``session.timeout.ms`` as the project sets it: Tansu holds a JoinGroup for about
  half the session timeout (librdkafka's default 45 s gives a 23 s join);
* topic configs: Tansu's DescribeConfigs answers none, and Quix derives the
  changelog topic's config from the input topic's ``retention.ms`` and
  ``retention.bytes``: :class:`TansuTopicAdmin` fills in Kafka's defaults.

librdkafka 2.12 (confluent-kafka's wheel) parses Tansu's ApiVersions v3 answer, so
``api.version.request=false`` (the Debian kcat workaround) is not needed here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from quixstreams import Application, State
from quixstreams.models import TopicConfig
from quixstreams.models.topics import TopicAdmin, TopicManager

from shared.features.catalog import is_product

# Kafka's broker defaults (log.retention.hours=168, log.retention.bytes=-1).
KAFKA_TOPIC_DEFAULTS = {"retention.ms": str(7 * 24 * 3600 * 1000), "retention.bytes": "-1"}


class TansuTopicAdmin(TopicAdmin):
    """A topic admin that fills in the configs Tansu does not report with Kafka's defaults."""

    def inspect_topics(self, topic_names: list[str], timeout: float = 30) -> dict[str, TopicConfig | None]:
        return {
            name: None if config is None else replace(config, extra_config=KAFKA_TOPIC_DEFAULTS | config.extra_config)
            for name, config in super().inspect_topics(topic_names, timeout=timeout).items()
        }


class CustomerFold:
    """Folds one invoice line into its customer's state; stops the app after ``records`` lines.

    Counts every record (guests too) from the first one processed, so "caught up"
    does not depend on end offsets (Tansu's undercount: they point at the start of
    the last record batch).
    """

    def __init__(self, records: int, sample: set[str], stop: Callable[[], None]) -> None:
        self.records = records
        self.stop = stop
        self.seen = 0
        self.started: float | None = None
        self.last_at: float | None = None
        self.watched = sample
        self.sample: dict[str, dict[str, Any]] = {}

    def __call__(self, line: dict[str, Any], state: State) -> None:
        if self.started is None:
            self.started = time.monotonic()
        customer = line["customer_id"]
        if line["unit_price"] > 0 and customer is not None:
            event = "e:" + line["event_id"]
            if not state.exists(event):
                state.set(event, 1)
                aggregates = self._apply(line, state)
                if customer in self.watched:
                    self.sample[customer] = aggregates
        self.seen += 1
        if self.seen == self.records:
            self.last_at = time.monotonic()
            self.stop()

    @staticmethod
    def _apply(line: dict[str, Any], state: State) -> dict[str, Any]:
        aggregates = state.get("agg") or {
            "lines": 0,
            "units": 0,
            "gross_spend": 0.0,
            "cancel_amount": 0.0,
            "invoices": 0,
            "products": 0,
            "first_purchase": None,
            "last_purchase": None,
        }
        aggregates["lines"] += 1
        code = line["stock_code"]
        if is_product(code):
            amount = line["quantity"] * line["unit_price"]
            invoice = line["invoice_no"]
            if invoice.startswith("C"):
                aggregates["cancel_amount"] -= amount
            else:
                aggregates["units"] += line["quantity"]
                aggregates["gross_spend"] += amount
                aggregates["invoices"] += _add_member(state, "i:" + invoice)
                aggregates["products"] += _add_member(state, "p:" + code)
                at = line["invoice_date"]  # ISO text of one format: compares like the times
                if aggregates["first_purchase"] is None or at < aggregates["first_purchase"]:
                    aggregates["first_purchase"] = at
                if aggregates["last_purchase"] is None or at > aggregates["last_purchase"]:
                    aggregates["last_purchase"] = at
        state.set("agg", aggregates)
        return aggregates


def _add_member(state: State, key: str) -> int:
    """1 if ``key`` was not in the customer's state yet (now it is), else 0."""
    if state.exists(key):
        return 0
    state.set(key, 1)
    return 1


def run(broker: str, topic: str, records: int, sample: set[str], consumer_config: dict[str, Any]) -> dict[str, Any]:
    """Fold ``records`` records of ``topic`` with a fresh group and state dir; return the figures."""
    group = f"bench-quix-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="quix-state-") as state_dir:
        app = Application(
            broker_address=broker,
            consumer_group=group,
            auto_offset_reset="earliest",
            processing_guarantee="at-least-once",
            state_dir=state_dir,
            consumer_extra_config=consumer_config,
            topic_manager=TopicManager(topic_admin=TansuTopicAdmin(broker_address=broker), consumer_group=group),
            loglevel="WARNING",
        )
        fold = CustomerFold(records, sample, app.stop)
        app.dataframe(app.topic(topic, key_deserializer="str")).update(fold, stateful=True)
        # Safety net only: stops if no record arrives for 60 s (then the count is short).
        app.run(timeout=60)
        committed_at = time.monotonic()  # run() returns after the final checkpoint commit and closing
    if fold.started is None or fold.seen < records:
        raise SystemExit(f"quix peer folded {fold.seen} of {records} records before the topic went quiet")
    elapsed = committed_at - fold.started
    return {
        "records": fold.seen,
        "records_per_s": round(fold.seen / elapsed, 1),
        "seconds_from_first_record": round(elapsed, 3),
        "seconds_to_last_record": round((fold.last_at or committed_at) - fold.started, 3),
        "sample": fold.sample,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quix_peer",
        description="Fold the invoices topic per customer with Quix Streams and print the rate as JSON "
        "(run by bench/worker_bench.py from the .venv-quix virtualenv).",
    )
    parser.add_argument("--broker", required=True, help="bootstrap servers, host:port")
    parser.add_argument("--topic", required=True, help="the invoices topic, as the replay filled it")
    parser.add_argument("--records", type=int, required=True, help="records in the topic: the run stops after them")
    parser.add_argument("--sample", action="append", default=[], help="a customer id whose aggregates to print")
    parser.add_argument(
        "--consumer-config",
        default="{}",
        help="extra librdkafka consumer settings as JSON, e.g. '{\"session.timeout.ms\": 6000}'",
    )
    args = parser.parse_args()
    result = run(args.broker, args.topic, args.records, set(args.sample), json.loads(args.consumer_config))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
