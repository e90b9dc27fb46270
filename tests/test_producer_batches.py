"""The replay's column-wise stream equals the row-by-row reference: verdicts, bytes, order, dead letters, counts."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from producer.batch import DECODER, ENCODER, Batch
from producer.columnar import check_rows, to_microseconds
from producer.events import EventCounts, Selection, publishable_batches
from producer.ordering import ReorderBuffer
from producer.validation import Limits, ParsedLine, parse_row, parse_timestamp
from shared.exceptions import RecordError
from shared.partitioner import KeyPartitioner
from shared.readers import CANONICAL, open_rows
from tests.test_producer_validation import GOOD

# Good and bad values for every field: each is tried in an otherwise good row.
VARIANTS: dict[str, list[str | None]] = {
    "invoice_no": [None, "", "  ", "C536379", " 536365 ", "x" * 64, "x" * 65, 'quo"te\\', "é"],
    "stock_code": [None, " ", "POST", "85123a", "s" * 65, "tab\tcode"],
    "description": [None, " ", "CAFÉ MUG", "d" * 512, "d" * 513, 'say "hi"\n\x01', "💡 LAMP"],
    "quantity": [None, " ", "0", "-6", "+6", " 6 ", "6.0", "6.5", "1e3", "1_000", "six", "1000000", "-1000001", "0x10"],
    "invoice_date": [
        None,
        "yesterday",
        "2010-12-01T08:26:00",
        "2010-12-01 08:26:00.5",
        "2010-12-01T08:26:00+01:00",
        "12/1/2010 8:26",
        "1.12.2010 08:26",
        "1999-12-31 23:59:59",
        "2100-01-01 00:00:00",
        " 2011-01-02 10:00:00 ",
    ],
    "unit_price": [
        None,
        "0",
        "0.0",
        "-0.0",
        "-0.01",
        "1",
        ".5",
        "1e-7",
        "1e5",
        "100000.01",
        "nan",
        "inf",
        "1e400",
        "x",
    ],
    "customer_id": [None, " ", "17850", "17850.00", " 17850.0 ", "17850.5", "ABC", "9" * 65],
    "country": [None, "", "EIRE", "c" * 513, "Unspecified "],
}


PARTITIONER = KeyPartitioner([0, 1, 2])


def corpus() -> list[dict[str, str | None]]:
    good: dict[str, str | None] = dict(GOOD)
    rows = [good]
    for name, values in VARIANTS.items():
        rows += [good | {name: value} for value in values]
    return rows


def test_column_wise_check_gives_parse_rows_verdict_and_bytes_on_every_value() -> None:
    rows = corpus() * 2  # repeated values share their distinct-value results
    random.Random(7).shuffle(rows)
    chunk = pd.DataFrame(rows, columns=list(CANONICAL))
    partitioner = PARTITIONER
    for limits in (Limits(), Limits(max_price=3.0, max_quantity=6, max_id_length=6, max_text_length=40)):
        checked = check_rows(chunk, limits, partitioner)
        index = 0
        for raw, valid in zip(rows, checked.valid.tolist(), strict=True):
            try:
                line = parse_row(raw, limits)
            except RecordError:
                assert not valid, raw
                continue
            assert valid, raw
            key = line.partition_key.encode()
            expected = (key, line.to_json(), partitioner(key), line.customer_id is None)
            got = (checked.keys[index], checked.values[index], checked.partitions[index], checked.guests[index])
            assert got == expected, raw
            assert checked.times_us[index] == to_microseconds(line.invoice_date)
            index += 1
        assert index == len(checked.values) > 0


@pytest.mark.parametrize("capacity", [0, 1, 3, 50])
@pytest.mark.parametrize("swaps", [0, 3, 40])
def test_pushing_runs_releases_what_pushing_one_by_one_does(capacity: int, swaps: int) -> None:
    rng = random.Random(capacity * 100 + swaps)
    times = sorted(rng.randrange(400) for _ in range(300))  # ties too
    for _ in range(swaps):  # rows out of place, some far
        i, j = rng.randrange(300), rng.randrange(300)
        times[i], times[j] = times[j], times[i]
    one: ReorderBuffer[int, int] = ReorderBuffer(capacity)
    runs: ReorderBuffer[int, int] = ReorderBuffer(capacity)
    expected = []
    for item, at in enumerate(times):
        released = one.push(at, item)
        expected += [] if released is None else [released]
    got: list[int] = []
    start = 0
    while start < len(times):
        size = rng.choice([1, 2, 5, 30, 120])
        got += runs.push_all(times[start : start + size], list(range(start, min(start + size, len(times)))))
        start += size
    assert got + list(runs.drain()) == expected + list(one.drain())
    assert runs.late == one.late


def test_a_batch_round_trips_through_messagepack() -> None:
    batch = Batch([1, 0], [b"17850", None], [b"{}", b"{}"], [2, -1], [False, False], [])
    assert DECODER.decode(ENCODER.encode(batch)) == batch


def row_by_row(path: Path, selection: Selection) -> tuple[list[tuple[Any, ...]], EventCounts]:
    """The stream as the replay built it one row at a time (the reference): (kind, key, value or raw, ...)."""
    buffer: ReorderBuffer[datetime, ParsedLine] = ReorderBuffer(selection.reorder_buffer)
    counts = EventCounts()
    stream: list[tuple[Any, ...]] = []
    taken = 0

    def line(parsed: ParsedLine) -> tuple[Any, ...]:
        key = parsed.partition_key.encode()
        at = to_microseconds(parsed.invoice_date)
        return ("line", key, parsed.to_json(), at, PARTITIONER(key), parsed.customer_id is None)

    for chunk in open_rows(path, chunk_rows=7_000):
        for row_no, values in zip(chunk.index, chunk.itertuples(index=False, name=None), strict=True):
            counts.rows_read += 1
            raw = dict(zip(CANONICAL, values, strict=True))
            try:
                parsed = parse_row(raw, selection.limits)
            except RecordError as exc:
                try:
                    outside = not selection.in_window(parse_timestamp(raw["invoice_date"] or ""))
                except RecordError:
                    outside = False
                if outside and (selection.start or selection.end):
                    counts.out_of_window += 1
                    continue
                stream.append(("dead", exc.kind, raw, f"row {row_no + 1}"))
            else:
                if not selection.in_window(parsed.invoice_date):
                    counts.out_of_window += 1
                    continue
                released = buffer.push(parsed.invoice_date, parsed)
                stream += [] if released is None else [line(released)]
            taken += 1
            if taken == selection.limit:
                stream += [line(parsed) for parsed in buffer.drain()]
                counts.late = buffer.late
                return stream, counts
    stream += [line(parsed) for parsed in buffer.drain()]
    counts.late = buffer.late
    return stream, counts


def flattened(batches: list[Batch]) -> list[tuple[Any, ...]]:
    stream: list[tuple[Any, ...]] = []
    for batch in batches:
        dead = {entry.index: entry for entry in batch.dead}
        columns = (batch.times_us, batch.keys, batch.values, batch.partitions, batch.guests)
        for index, (at, key, value, partition, guest) in enumerate(zip(*columns, strict=True)):
            if key is None:
                letter = json.loads(value)
                assert dict(dead[index].headers)["dlq.reason"] == dead[index].reason.encode()
                stream.append(("dead", dead[index].reason, letter["raw"], letter["position"]))
            else:
                stream.append(("line", key, value, at, partition, guest))
    return stream


@pytest.mark.parametrize(
    "selection",
    [
        Selection(),
        Selection(start=datetime(2011, 3, 1), end=datetime(2011, 6, 1), limit=40_000, reorder_buffer=500),
        Selection(start=datetime(2011, 9, 1), limit=123_457, reorder_buffer=0, limits=Limits(max_price=50.0)),
    ],
)
def test_batches_carry_the_row_by_row_stream_of_the_real_file(dataset: Path, selection: Selection) -> None:
    expected, expected_counts = row_by_row(dataset, selection)
    counts = EventCounts()
    batches = list(publishable_batches(dataset, selection, counts, PARTITIONER.partitions, chunk_rows=50_000))
    assert flattened(batches) == expected
    assert counts == expected_counts
    assert all(len(batch) == 2_048 for batch in batches[:-1])
