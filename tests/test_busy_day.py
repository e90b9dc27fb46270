"""A busy day: 20,000 lines on one event day, 15,000 of them guest invoices, read in one batch.

A sales day puts tens of thousands of lines on one date. That day's dedup set,
the guests' invoice set and the batch commit then carry thousands of members each
(a Lua ``unpack`` stops at about 8,000 values), and one batch holds the whole day.
The stream must still equal the batch answer computed with pandas, and the same
day delivered a second time (a producer that retried) must change nothing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import redis

from harness.compare import differences, state
from shared.settings import Settings
from shared.state.guests import guest_stats
from shared.state.keys import Keys
from tests.pipeline import SIM_CUTOFF, bootstrap, replay_file, run_worker, simulated
from tests.truth import assert_matches_batch, batch_truth

STREAM_DAYS = 10
BUSY_DAY = SIM_CUTOFF + timedelta(days=6)
GUEST_INVOICES = 15_000
CUSTOMER_INVOICES = 250
LINES_PER_CUSTOMER_INVOICE = 20


def _busy(history: Path, out: Path) -> int:
    """``history`` plus the busy day, in time order; returns the busy day's lines."""
    lines = pd.read_csv(history, dtype=str, keep_default_na=False)
    codes = lines[["StockCode", "Description", "UnitPrice"]].drop_duplicates("StockCode").head(40)
    customers = sorted({c for c in lines["CustomerID"] if c})[:CUSTOMER_INVOICES]
    rows = []
    for n in range(GUEST_INVOICES):
        code = codes.iloc[n % len(codes)]
        at = BUSY_DAY + timedelta(hours=8, seconds=2 * n)
        rows.append((str(700_000 + n), code.StockCode, code.Description, str(1 + n % 5), at, code.UnitPrice, ""))
    for n, customer in enumerate(customers):
        at = BUSY_DAY + timedelta(hours=9, minutes=n)
        for line in range(LINES_PER_CUSTOMER_INVOICE):
            code = codes.iloc[(n + line) % len(codes)]
            rows.append(
                (str(720_000 + n), code.StockCode, code.Description, str(1 + line), at, code.UnitPrice, customer)
            )
    busy = pd.DataFrame(
        [(*row[:4], f"{row[4]:%Y-%m-%d %H:%M:%S}", row[5], row[6], "United Kingdom") for row in rows],
        columns=lines.columns,
    )
    merged = pd.concat([lines, busy], ignore_index=True)
    merged = merged.iloc[pd.to_datetime(merged["InvoiceDate"]).argsort(kind="stable")]
    merged.to_csv(out, index=False)
    return len(busy)


def test_a_day_of_20000_lines_and_15000_guest_invoices_equals_the_batch_and_is_deduplicated(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    source = tmp_path / "busy.csv"
    assert _busy(simulated(tmp_path, STREAM_DAYS), source) == 20_000
    keys = Keys(settings.redis.key_prefix)
    partitions = settings.topics.partitions
    bootstrap(settings, redis_client, source, SIM_CUTOFF, tmp_path, k=4)
    replay_file(settings, source, SIM_CUTOFF, tmp_path)
    run_worker(settings, batch_max_records=20_000)
    assert_matches_batch(redis_client, keys, batch_truth(source), partitions)
    assert guest_stats(redis_client, keys).invoices >= GUEST_INVOICES
    once = state(redis_client, keys, partitions)

    resent = replay_file(settings, source, BUSY_DAY, tmp_path, end=BUSY_DAY + timedelta(days=1))
    assert resent >= 20_000
    run_worker(settings, batch_max_records=20_000)
    twice = state(redis_client, keys, partitions)
    changed = differences(once, twice, keys.prefix, keys.prefix)
    assert changed == [keys.checkpoint(p).removeprefix(keys.prefix) for p in range(partitions)]
