"""Replay against a real broker: the full real file, bad rows, selection, pacing and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from producer.replay import SEQ_HEADER, ReplayOptions, replay
from producer.settings import ProducerSettings
from shared.exceptions import CorruptInputError, EmptyInputError, UnknownLayoutError
from shared.kafka_clients import make_consumer
from shared.settings import KafkaSettings, Settings

REPO = Path(__file__).resolve().parents[1]
HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def consume_all(kafka: KafkaSettings, topic: str) -> list[ConsumerRecord]:
    """Every message now in ``topic``: all partitions from the start, until the end and then quiet.

    The extra quiet polls matter: Tansu reports end offsets that can trail the last
    batch, so reaching them does not prove the topic is exhausted.
    """
    consumer = make_consumer(
        kafka,
        group_id=None,
        max_poll_records=100_000,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        quiet_polls = 0
        while quiet_polls < 2 or any(consumer.position(tp) < ends[tp] for tp in partitions):
            batches = consumer.poll(timeout_ms=500)
            quiet_polls = 0 if batches else quiet_polls + 1
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def message_count(kafka: KafkaSettings, topic: str) -> int:
    """Approximate size of ``topic`` from end offsets (cheap; may trail the true count slightly)."""
    consumer = make_consumer(kafka, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(partitions).values()) if partitions else 0
    finally:
        consumer.close()


def seq_of(record: ConsumerRecord) -> int:
    return int(dict(record.headers)[SEQ_HEADER])


def config(tmp_path: Path, **changes: Any) -> ProducerSettings:
    return ProducerSettings(checkpoint_dir=tmp_path / "checkpoints", **changes)


def write_rows(path: Path, rows: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding=encoding)
    return path


def test_full_real_file_arrives_complete_exact_and_in_order(settings: Settings, dataset: Path, tmp_path: Path) -> None:
    summary = replay(dataset, settings, ReplayOptions(), config(tmp_path))
    print(f"full replay: {summary.rows_per_s:,.0f} rows/s in {summary.elapsed_s:.1f} s")
    lines = consume_all(settings.kafka, settings.topics.invoices)
    dead = consume_all(settings.kafka, settings.topics.dead_letter)
    assert len(lines) + len(dead) == 541_909 == summary.acked
    assert summary.sent == len(lines) and sum(summary.dead_lettered.values()) == len(dead)

    source = pd.read_csv(dataset, dtype={"InvoiceNo": str, "StockCode": str})
    bad = source["UnitPrice"] < 0
    assert sorted(json.loads(r.value)["raw"]["invoice_no"] for r in dead) == sorted(source.loc[bad, "InvoiceNo"])
    assert {dict(r.headers)["dlq.reason"] for r in dead} == {b"out_of_range"}

    received = pd.DataFrame([json.loads(r.value) for r in lines])
    received["key"] = [r.key.decode() for r in lines]
    received["partition"] = [r.partition for r in lines]
    received["offset"] = [r.offset for r in lines]
    received["seq"] = [seq_of(r) for r in lines]
    received["at"] = pd.to_datetime(received["invoice_date"])

    guests = source["CustomerID"].isna() & ~bad
    assert received["key"].str.startswith("guest:").sum() == guests.sum() == summary.guests
    by_key = received.sort_values(["partition", "offset"]).groupby("key")
    assert (by_key["seq"].diff().dropna() > 0).all()
    assert (by_key["at"].diff().dropna() >= pd.Timedelta(0)).all()

    expected = source[~bad].sort_values("InvoiceDate", kind="stable").reset_index(drop=True)
    got = received.sort_values("seq").reset_index(drop=True)
    assert (got["quantity"] == expected["Quantity"]).all()
    assert (got["unit_price"] == expected["UnitPrice"]).all()
    assert (got["at"] == pd.to_datetime(expected["InvoiceDate"])).all()
    customers = expected["CustomerID"].map(lambda c: None if pd.isna(c) else str(int(c)))
    assert got["customer_id"].tolist() == customers.tolist()
    assert (got["invoice_no"] == expected["InvoiceNo"]).all()


def test_bad_rows_are_dead_lettered_and_the_rest_arrives(settings: Settings, tmp_path: Path) -> None:
    good = [f"5400{i:02d},85123A,HEART,{i + 1},2011-01-0{1 + i % 5} 10:00:00,2.5,1785{i % 3}.0,UK" for i in range(20)]
    bad = {
        "missing_field": "540100,,NO STOCK CODE,1,2011-01-02 10:00:00,2.5,17850.0,UK",
        "invalid_number": "540101,85123A,HEART,many,2011-01-02 10:00:00,2.5,17850.0,UK",
        "invalid_timestamp": "540102,85123A,HEART,1,the 2nd of Jan,2.5,17850.0,UK",
        "out_of_range": "540103,85123A,HEART,1,2011-01-02 10:00:00,-1.0,17850.0,UK",
        "absurd_price": "540104,85123A,HEART,1,2011-01-02 10:00:00,250000,17850.0,UK",
    }
    path = write_rows(tmp_path / "bad.csv", good[:10] + list(bad.values()) + good[10:])
    summary = replay(path, settings, ReplayOptions(), config(tmp_path))

    lines = consume_all(settings.kafka, settings.topics.invoices)
    assert sorted(json.loads(r.value)["invoice_no"] for r in lines) == [f"5400{i:02d}" for i in range(20)]
    dead = {
        json.loads(r.value)["raw"]["invoice_no"]: r for r in consume_all(settings.kafka, settings.topics.dead_letter)
    }
    reasons = {invoice: dict(r.headers)["dlq.reason"].decode() for invoice, r in dead.items()}
    assert reasons == {
        "540100": "missing_field",
        "540101": "invalid_number",
        "540102": "invalid_timestamp",
        "540103": "out_of_range",
        "540104": "out_of_range",
    }
    letter = json.loads(dead["540101"].value)
    assert (letter["stage"], letter["field"], letter["source"], letter["position"]) == (
        "validate",
        "quantity",
        str(path),
        "row 12",
    )
    assert summary.dead_lettered == Counter(missing_field=1, invalid_number=1, invalid_timestamp=1, out_of_range=2)


def test_whole_file_problems_fail_fast(settings: Settings, tmp_path: Path, dataset: Path) -> None:
    layout = tmp_path / "layout.csv"
    layout.write_text("Invoice,Code,When\n1,2,3\n")
    with pytest.raises(UnknownLayoutError, match="missing"):
        replay(layout, settings, ReplayOptions(), config(tmp_path))
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError):
        replay(empty, settings, ReplayOptions(), config(tmp_path))
    cut = tmp_path / "cut.csv.xz"
    cut.write_bytes(dataset.read_bytes()[:200_000])
    with pytest.raises(CorruptInputError, match="truncated"):
        replay(cut, settings, ReplayOptions(), config(tmp_path, chunk_rows=1_000, reorder_buffer=100))
    assert message_count(settings.kafka, settings.topics.invoices) > 0  # rows before the cut went out


def test_encoding_error_names_the_fix_and_the_fix_works(settings: Settings, tmp_path: Path) -> None:
    path = write_rows(tmp_path / "latin.csv", ["536365,85123A,CAFÉ MUG,6,2010-12-01 08:26:00,2.55,,France"], "latin-1")
    with pytest.raises(CorruptInputError, match="--encoding latin-1"):
        replay(path, settings, ReplayOptions(), config(tmp_path))
    replay(path, settings, ReplayOptions(encoding="latin-1"), config(tmp_path))
    [record] = consume_all(settings.kafka, settings.topics.invoices)
    assert json.loads(record.value)["description"] == "CAFÉ MUG" and record.key == b"guest:536365"


@pytest.mark.parametrize("suffix", [".parquet", ".xlsx"])
def test_online_retail_ii_columns_in_parquet_and_xlsx(settings: Settings, tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame(
        {
            "Invoice": ["489434", "489435"],
            "StockCode": ["85048", "22350"],
            "Description": ["ROSE CUSHION", None],
            "Quantity": [12, -3],
            "InvoiceDate": pd.to_datetime(["2009-12-01 07:45:00", "2009-12-01 07:46:00"]),
            "Price": [6.95, 2.55],
            "Customer ID": [13085.0, None],
            "Country": ["United Kingdom", "France"],
        }
    )
    path = tmp_path / f"retail_ii{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_excel(path, index=False, engine="openpyxl")
    replay(path, settings, ReplayOptions(), config(tmp_path))
    values = sorted((json.loads(r.value) for r in consume_all(settings.kafka, settings.topics.invoices)), key=str)
    assert [(v["invoice_no"], v["quantity"], v["unit_price"], v["customer_id"], v["invoice_date"]) for v in values] == [
        ("489434", 12, 6.95, "13085", "2009-12-01T07:45:00"),
        ("489435", -3, 2.55, None, "2009-12-01T07:46:00"),
    ]


def test_window_limit_and_reordering_select_the_right_rows(settings: Settings, tmp_path: Path) -> None:
    days = [3, 1, 2, 5, 4, 6, 2, 7]  # slightly disordered input
    path = write_rows(tmp_path / "days.csv", [f"5{i},S,D,1,2011-03-0{d} 09:00:00,1.0,1,UK" for i, d in enumerate(days)])
    options = ReplayOptions(start=datetime(2011, 3, 2), end=datetime(2011, 3, 6), limit=4)
    summary = replay(path, settings, options, config(tmp_path, reorder_buffer=3, prepare_process=False))
    records = sorted(consume_all(settings.kafka, settings.topics.invoices), key=seq_of)
    # window [2nd, 6th) keeps days 3, 2, 5, 4, 2; the limit keeps the first four read; order is by event time
    # (prepared in-process here, in a child process everywhere else: both paths are covered)
    assert [json.loads(r.value)["invoice_no"] for r in records] == ["52", "50", "54", "53"]
    assert (summary.sent, summary.out_of_window, summary.late) == (4, 1, 0)


def run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``python -m producer ARGS`` in the background, for tests that signal it while it runs."""
    return subprocess.Popen(
        [sys.executable, "-m", "producer", *args],
        cwd=REPO,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return {
        "SEG_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "SEG_TOPICS__INVOICES": settings.topics.invoices,
        "SEG_TOPICS__DEAD_LETTER": settings.topics.dead_letter,
        "SEG_TOPICS__PARTITIONS": str(settings.topics.partitions),
        "SEG_PRODUCER_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
    }


def test_speed_paces_by_event_time(settings: Settings, tmp_path: Path) -> None:
    rows = ["1,S,D,1,2011-03-01 09:00:00,1.0,1,UK", "2,S,D,1,2011-03-01 10:00:00,1.0,1,UK"]
    path = write_rows(tmp_path / "hour.csv", rows)
    started = time.monotonic()
    result = run_cli("replay", str(path), "--speed", str(3600 / 2), "--quiet", env=cli_env(settings, tmp_path))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2.0  # one event-hour at 1800x is two wall seconds
    assert "sent 2" in result.stdout and len(consume_all(settings.kafka, settings.topics.invoices)) == 2


def test_help_lists_every_option() -> None:
    result = run_cli("replay", "--help", env={})
    assert result.returncode == 0
    for option in (
        "--speed",
        "--max-speed",
        "--start",
        "--end",
        "--limit",
        "--partitions",
        "--topic",
        "--checkpoint",
        "--from-scratch",
        "--encoding",
        "--quiet",
    ):
        assert option in result.stdout, option


def test_exit_codes_for_bad_input_and_no_broker(settings: Settings, tmp_path: Path) -> None:
    missing = run_cli("replay", str(tmp_path / "nope.csv"), env=cli_env(settings, tmp_path))
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "Traceback" not in missing.stderr
    path = write_rows(tmp_path / "one.csv", ["1,S,D,1,2011-03-01 09:00:00,1.0,1,UK"])
    no_broker = cli_env(settings, tmp_path) | {
        "SEG_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SEG_KAFKA__REQUEST_TIMEOUT_MS": "1000",
    }
    unreachable = run_cli("replay", str(path), "--quiet", env=no_broker)
    assert unreachable.returncode == 3 and "no Kafka broker answers" in unreachable.stderr
    bad_config = run_cli("replay", str(path), env=cli_env(settings, tmp_path) | {"SEG_PRODUCER_MAX_PRICE": "-1"})
    assert bad_config.returncode == 2 and "SEG_PRODUCER_MAX_PRICE" in bad_config.stderr
