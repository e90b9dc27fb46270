"""The fetcher process: frames round-trip exactly, and an order drops whatever was fetched before it.

Against the real broker: the worker relies on a new order (after a rebalance or a
reload) replacing the partitions and start offsets completely, with nothing
fetched under an older order ever handed over.
"""

from __future__ import annotations

from dataclasses import fields

from kafka import KafkaProducer

from shared.kafka_clients import ensure_topics
from shared.settings import Settings
from tests.test_decode import _value
from worker.stream.decode import Records
from worker.stream.decode import decode as decode_values
from worker.stream.fetcher import Columns, FetchedBatch, Fetcher, decode, encode


def test_a_frame_round_trips_the_consumed_records_and_what_the_child_decoded_of_them() -> None:
    keys: list[bytes | None] = [b"17850", b"17850", None, None]
    # a guest line (no customer) among them: the coded text columns carry None too
    values: list[bytes | None] = [_value(), b"{not json", _value(quantity=7), _value(customer_id=None, quantity=2)]
    polled = {2: Columns([7, 8, 9, 10], keys, values), 0: Columns([0], [b"k\x00"], [None]), 5: Columns([], [], [])}
    epoch, batch, highwater = decode(encode(5, polled, {2: 11, 5: 4}), "t")
    assert epoch == 5
    assert highwater == {2: 11, 5: 4}  # partition 5: only its high watermark moved
    assert (batch[2].offsets, list(batch[2].keys), list(batch[2].values)) == ([7, 8, 9, 10], keys, values)
    expected, refused = decode_values(2, [7, 8, 9, 10], keys, values)
    assert expected.customer_id.tolist() == ["17850", "17850", None]
    for column in fields(Records):
        assert getattr(batch[2].records, column.name).tolist() == getattr(expected, column.name).tolist(), column.name
    assert [(r.offset, r.value, r.error.kind, str(r.error)) for r in batch[2].refused] == [
        (8, b"{not json", "decode_error", str(refused[0].error))
    ]
    assert [(r.offset, r.value, r.error.kind) for r in batch[0].refused] == [(0, None, "decode_error")]
    assert len(batch[0].records) == 0 and len(batch[5].records) == 0 and batch[5].offsets == []


def test_frames_of_one_partition_join_into_one_batch_in_offset_order() -> None:
    values: list[bytes | None] = [_value(quantity=1), _value(quantity=2), _value(quantity=3), b"{not json"]
    keys: list[bytes | None] = [b"a", None, b"ccc", b"d"]
    frames = [
        encode(1, {3: Columns([10, 11], keys[:2], values[:2])}, {}),
        encode(1, {3: Columns([12, 13], keys[2:], values[2:])}, {}),
    ]
    joined = FetchedBatch.joined([decode(frame, "t")[1][3] for frame in frames])
    assert (joined.offsets, list(joined.keys), list(joined.values)) == ([10, 11, 12, 13], keys, values)
    assert joined.records.offset.tolist() == [10, 11, 12]
    assert joined.records.quantity.tolist() == [1, 2, 3]
    assert [(r.offset, r.key, r.value) for r in joined.refused] == [(13, b"d", b"{not json")]


def _poll_all(fetcher: Fetcher, expected: int) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for _ in range(40):
        for partition, fetched in fetcher.poll(0.5).items():
            offsets.setdefault(partition, []).extend(fetched.offsets)
        if sum(len(o) for o in offsets.values()) >= expected:
            break
    return offsets


def _fetcher_over_two_partitions(settings: Settings, records: int) -> Fetcher:
    """A fetcher of the invoices topic, two partitions of ``records`` / 2 records each (offsets from 0)."""
    topic = settings.topics.invoices
    ensure_topics(settings.kafka, [topic], 2, 1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    for i in range(records):
        producer.send(topic, partition=i % 2, key=str(i).encode(), value=f"v{i}".encode())
    producer.flush()
    producer.close()
    return Fetcher(settings, topic, max_records=100, partition_bytes=64 * 1024)


def test_each_order_replaces_partitions_and_offsets_and_drops_older_fetches(settings: Settings) -> None:
    fetcher = _fetcher_over_two_partitions(settings, 300)
    try:
        fetcher.assign({0: -1, 1: -1})
        first = fetcher.poll(10.0)
        assert 0 < sum(len(fetched.offsets) for fetched in first.values()) <= 100
        # Frames of the first order are queued or in flight by now; none may come through.
        fetcher.assign({0: 140})  # partition 1 revoked, partition 0 moved
        assert _poll_all(fetcher, 10) == {0: list(range(140, 150))}
        assert fetcher.poll(0.5) == {}
        assert fetcher.highwater == {0: 150}

        fetcher.assign({0: -1, 1: -1})
        assert _poll_all(fetcher, 300) == {0: list(range(150)), 1: list(range(150))}
        assert fetcher.highwater == {0: 150, 1: 150}
    finally:
        fetcher.close()


def test_a_new_order_fetches_partitions_an_earlier_order_paused(settings: Settings) -> None:
    """After a rebalance the worker starts its new order unpaused; librdkafka keeps a partition's
    pause across ``assign``, so the child must resume what the order names, or it never fetches again."""
    fetcher = _fetcher_over_two_partitions(settings, 200)
    try:
        fetcher.assign({1: -1})
        assert fetcher.poll(10.0)
        fetcher.pause({1})
        fetcher.poll(1.0)  # the pause is in force in the child by now
        fetcher.assign({0: -1, 1: -1})  # a new order (a rebalance): nothing paused
        assert _poll_all(fetcher, 200) == {0: list(range(100)), 1: list(range(100))}
    finally:
        fetcher.close()
