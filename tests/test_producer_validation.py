"""Validation, ordering, ack tracking and checkpoints: the deterministic parts of the replay."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from kafka.future import Future
from kafka.producer.future import RecordMetadata

from producer.acks import AckTracker
from producer.checkpoint import Checkpoint, Saved, fingerprint
from producer.ordering import ReorderBuffer
from producer.validation import Limits, parse_row, validate_row
from shared.exceptions import DeliveryError, RecordError
from shared.readers import CANONICAL, open_rows

GOOD = {
    "invoice_no": "536365",
    "stock_code": "85123A",
    "description": "WHITE HANGING HEART T-LIGHT HOLDER",
    "quantity": "6",
    "invoice_date": "2010-12-01 08:26:00",
    "unit_price": "2.55",
    "customer_id": "17850.0",
    "country": "United Kingdom",
}


def test_fast_json_equals_pydantic_json_for_every_real_row(dataset: Path) -> None:
    """The replay's hand-built JSON and event id are byte-identical to the contract model's."""
    checked = rejected = 0
    for chunk in open_rows(dataset):
        for values in chunk.itertuples(index=False, name=None):
            raw = dict(zip(CANONICAL, values, strict=True))
            try:
                fast = parse_row(raw)
            except RecordError:
                rejected += 1
                continue
            model = validate_row(raw)
            assert fast.to_json() == model.model_dump_json().encode(), raw
            assert fast.partition_key == model.partition_key
            checked += 1
    assert (checked, rejected) == (541_907, 2)


def test_valid_row_is_normalised() -> None:
    line = validate_row(GOOD)
    assert line.customer_id == "17850" and line.quantity == 6 and line.unit_price == 2.55
    assert line.invoice_date == datetime(2010, 12, 1, 8, 26)
    guest = validate_row(GOOD | {"customer_id": None, "description": None, "unit_price": "0"})
    assert guest.partition_key == "guest:536365" and guest.description is None and guest.unit_price == 0.0
    assert validate_row(GOOD | {"quantity": "6.0", "invoice_date": "12/1/2010 8:26"}) == line


@pytest.mark.parametrize(
    ("change", "kind", "field"),
    [
        ({"invoice_no": None}, "missing_field", "invoice_no"),
        ({"country": "  "}, "missing_field", "country"),
        ({"quantity": "six"}, "invalid_number", "quantity"),
        ({"quantity": "1.5"}, "invalid_number", "quantity"),
        ({"unit_price": "nan"}, "invalid_number", "unit_price"),
        ({"invoice_date": "yesterday"}, "invalid_timestamp", "invoice_date"),
        ({"invoice_date": "2010-12-01T08:26:00+01:00"}, "invalid_timestamp", "invoice_date"),
        ({"unit_price": "-0.01"}, "out_of_range", "unit_price"),
        ({"unit_price": "100000.01"}, "out_of_range", "unit_price"),
        ({"quantity": "-1000001"}, "out_of_range", "quantity"),
    ],
)
def test_bad_values_raise_the_right_record_error(change: dict[str, str | None], kind: str, field: str) -> None:
    with pytest.raises(RecordError) as caught:
        parse_row(GOOD | change)
    assert (caught.value.kind, caught.value.field) == (kind, field)


def test_limits_are_configurable() -> None:
    assert parse_row(GOOD | {"unit_price": "150000"}, Limits(max_price=200_000)).fields["unit_price"] == 150_000.0
    with pytest.raises(RecordError, match="exceeds 5"):
        parse_row(GOOD, Limits(max_quantity=5))


def test_reorder_buffer_sorts_within_capacity_and_releases_late_rows() -> None:
    base = datetime(2011, 1, 1)
    arrivals = [3, 1, 2, 2, 6, 5, 0, 7]  # 0 arrives after 3 was released: late
    buffer: ReorderBuffer[datetime, str] = ReorderBuffer(capacity=2)
    out = []
    for index, minute in enumerate(arrivals):
        released = buffer.push(base + timedelta(minutes=minute), f"{minute}/{index}")
        out += [released] if released is not None else []
    out += list(buffer.drain())
    assert out == ["1/1", "2/2", "2/3", "3/0", "0/6", "5/5", "6/4", "7/7"]
    assert buffer.late == 1


def acked_at(partition: int, offset: int) -> RecordMetadata:
    return RecordMetadata("t", partition, None, offset, 0, None, 1, 1, 1)


def test_ack_watermark_only_moves_over_a_contiguous_prefix() -> None:
    futures = [Future() for _ in range(4)]
    tracker = AckTracker(acked=10, ends={("t", 0): 7})
    for future in futures:
        tracker.track(future)
    futures[1].success(acked_at(1, 3))
    futures[3].success(acked_at(1, 4))
    assert tracker.advance() == 10 and tracker.ends == {("t", 0): 7}
    futures[0].success(acked_at(0, 7))
    assert tracker.advance() == 12
    assert tracker.ends == {("t", 0): 8, ("t", 1): 4}  # the offset after the prefix's last message
    futures[2].failure(TimeoutError("broker gone"))
    with pytest.raises(DeliveryError, match="message 12") as failed:
        tracker.advance()
    assert tracker.acked == 12 == failed.value.acknowledged and tracker.pending == 2
    assert tracker.ends == {("t", 0): 8, ("t", 1): 4}  # the acknowledged message behind the failure does not count


def test_checkpoint_is_atomic_and_bound_to_its_input(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("x")
    identity = fingerprint(source, {"topic": "a"})
    assert identity != fingerprint(source, {"topic": "b"})
    checkpoint = Checkpoint.in_dir(tmp_path / "ck", identity)
    assert checkpoint.load() == Saved()
    target = {"cluster_id": "c", "topics": {"a": {"id": "t-1", "partitions": 2}}}
    checkpoint.save(41, False, target, {("a", 0): 20, ("a", 1): 21})
    checkpoint.save(42, True, target, {("a", 0): 20, ("a", 1): 22})
    assert checkpoint.load() == Saved(42, target, {"a": {0: 20, 1: 22}})
    assert json.loads(checkpoint.path.read_text())["complete"] is True
    assert [p.name for p in checkpoint.path.parent.iterdir()] == [checkpoint.path.name]
    assert Checkpoint(checkpoint.path, fingerprint(source, {"topic": "b"})).load() == Saved()
    source.write_text("xy")
    assert fingerprint(source, {"topic": "a"}) != identity
