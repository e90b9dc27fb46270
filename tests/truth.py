"""The batch answer over a whole file, computed independently with pandas: what the stream must arrive at.

Independent of the worker's fold (and of the bootstrap, which runs that fold):
plain ``groupby`` aggregations over the cleaned lines. The assertion also checks
that every stored record is consistent (its features and vector are what its
segment was decided on, at its ``as_of``) and that product popularity per
published segment equals the members' units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import redis

from shared.features.aggregates import MONTH_WINDOW
from shared.features.clock import month_key
from shared.features.scaling import transform_vector
from shared.features.vector import FEATURE_NAMES, compute_features
from shared.state.customer_record import CustomerRecord
from shared.state.guests import guest_stats
from shared.state.keys import Keys
from shared.state.model_store import require_current
from shared.state.popularity import segment_products
from tests.pipeline import records
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history


@dataclass(frozen=True)
class Truth:
    aggregates: dict[str, dict]  # customer -> the ``agg`` fields
    guests: tuple[int, float, int]  # lines, amount, distinct invoices
    product_lines: pd.DataFrame  # customer_id, stock_code, quantity of every cleaned product line


def _months(lines: pd.DataFrame) -> dict[str, dict[str, float]]:
    product = lines[lines["kind"] != "non_product"]
    number = product["invoice_date"].dt.year * 12 + product["invoice_date"].dt.month - 1
    sums = product.assign(number=number).groupby(["customer_id", "number"])["amount"].sum()
    last = number.groupby(product["customer_id"]).max()
    out: dict[str, dict[str, float]] = {}
    for (cid, month), value in sums.items():
        if month > last[cid] - MONTH_WINDOW and value != 0.0:
            out.setdefault(cid, {})[month_key(int(month))] = float(value)
    return out


def batch_truth(dataset: Path, until: datetime | None = None) -> Truth:
    """Pandas over every cleaned line of ``dataset`` (before ``until``)."""
    cleaned = clean(load_history(dataset, until))
    lines = cleaned.customers
    kind = lines["kind"]
    by = lines.groupby("customer_id")
    purchase, cancel, fees = lines[kind == "purchase"], lines[kind == "cancellation"], lines[kind == "non_product"]
    product = lines[kind != "non_product"]
    month_number = product["invoice_date"].dt.year * 12 + product["invoice_date"].dt.month - 1
    frame = pd.DataFrame(
        {
            "lines": by.size(),
            "purchase_lines": purchase.groupby("customer_id").size(),
            "cancel_lines": cancel.groupby("customer_id").size(),
            "non_product_lines": fees.groupby("customer_id").size(),
            "units": purchase.groupby("customer_id")["quantity"].sum(),
            "invoices": purchase.groupby("customer_id")["invoice_no"].nunique(),
            "cancel_invoices": cancel.groupby("customer_id")["invoice_no"].nunique(),
            "products": purchase.groupby("customer_id")["stock_code"].nunique(),
            "gross_spend": purchase.groupby("customer_id")["amount"].sum(),
            "cancel_amount": -cancel.groupby("customer_id")["amount"].sum(),
            "non_product_amount": fees.groupby("customer_id")["amount"].sum(),
            "first_seen": by["invoice_date"].min(),
            "last_seen": by["invoice_date"].max(),
            "first_purchase": purchase.groupby("customer_id")["invoice_date"].min(),
            "last_purchase": purchase.groupby("customer_id")["invoice_date"].max(),
            "first_month": month_number.groupby(product["customer_id"]).min(),
            "last_month": month_number.groupby(product["customer_id"]).max(),
            # Lines are in event order (ties: file order), so the last one per customer is the latest.
            "country": by["country"].last(),
        }
    )
    months = _months(lines)
    aggregates = {}
    for cid, row in frame.iterrows():
        entry: dict = {}
        for name in ("lines", "purchase_lines", "cancel_lines", "non_product_lines", "units"):
            entry[name] = int(row[name]) if pd.notna(row[name]) else 0
        for name in ("invoices", "cancel_invoices", "products"):
            entry[name] = int(row[name]) if pd.notna(row[name]) else 0
        for name in ("gross_spend", "cancel_amount", "non_product_amount"):
            entry[name] = float(row[name]) if pd.notna(row[name]) else 0.0
        for name in ("first_seen", "last_seen", "first_purchase", "last_purchase"):
            entry[name] = row[name].isoformat() if pd.notna(row[name]) else None
        for name in ("first_month", "last_month"):
            entry[name] = month_key(int(row[name])) if pd.notna(row[name]) else None
        entry["country"] = row["country"]
        entry["months"] = months.get(str(cid), {})
        aggregates[str(cid)] = entry
    guests = cleaned.guests
    product_lines = lines[kind != "non_product"][["customer_id", "stock_code", "quantity"]].reset_index(drop=True)
    return Truth(
        aggregates,
        (len(guests), float(guests["amount"].sum()), int(guests["invoice_no"].nunique())),
        product_lines,
    )


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _same(expected: object, stored: object) -> bool:
    if isinstance(expected, float):
        return isinstance(stored, int | float) and close(expected, stored)
    if isinstance(expected, dict):
        # A month whose lines net to zero may be left out on one side and be 1e-14 on the other.
        return isinstance(stored, dict) and all(
            close(expected.get(k, 0.0), stored.get(k, 0.0)) for k in expected.keys() | stored.keys()
        )
    return expected == stored


def assert_matches_batch(client: redis.Redis, keys: Keys, truth: Truth, partitions: int) -> dict[str, CustomerRecord]:
    """Every customer's aggregates equal pandas (1e-9), each record is consistent, guests and popularity agree."""
    stored = records(client, keys, partitions)
    assert stored.keys() == truth.aggregates.keys()
    snapshot = require_current(client, keys)
    for cid, expected in truth.aggregates.items():
        record = stored[cid]
        have = record.aggregates.to_dict()
        for name, value in expected.items():
            assert _same(value, have[name]), (cid, name, value, have[name])
        assert_consistent(record, snapshot.transform)
    guests = guest_stats(client, keys)
    assert guests.lines == truth.guests[0] and guests.invoices == truth.guests[2]
    assert close(guests.amount, truth.guests[1])
    published = {cid: r.published for cid, r in stored.items() if r.published >= 0}
    expected_products = segment_units(truth.product_lines, published)
    for segment in {s.id for s in snapshot.segments} | set(expected_products):
        assert segment_products(client, keys, segment) == expected_products.get(segment, {}), segment
    assert_compact(client, keys, partitions)
    return stored


def assert_compact(client: redis.Redis, keys: Keys, partitions: int) -> None:
    """Popularity hashes stay listpacks and dedup sets intsets: the layout's memory per customer depends on it."""
    popularity = [name for p in range(partitions) for s in range(64) for name in keys.products(p, s)]
    dedup = [key for p in range(partitions) for key in client.scan_iter(match=f"{keys.tag(p)}:seen:*", count=1000)]
    encodings = {key: client.object("encoding", key) for key in popularity + dedup if client.exists(key)}
    assert dedup, "no dedup sets"
    assert {encodings[key] for key in dedup} == {"intset"}, encodings
    assert {encodings[key] for key in popularity if key in encodings} == {"listpack"}, encodings


def assert_consistent(record: CustomerRecord, transform: object) -> None:
    """The stored features and vector are the ones the stored segment was decided on (at ``as_of``)."""
    if record.features is None:
        assert record.segment < 0 and record.vector is None, record.customer_id
        return
    assert record.as_of is not None
    expected = compute_features(record.aggregates, record.as_of)
    assert expected is not None, record.customer_id
    assert all(close(record.features[name], expected[name]) for name in FEATURE_NAMES), record.customer_id
    vector = transform_vector(expected, transform)  # type: ignore[arg-type]
    assert record.vector is not None and np.allclose(record.vector, vector, rtol=1e-9, atol=1e-9), record.customer_id


def segment_units(lines: pd.DataFrame, published: dict[str, int]) -> dict[int, dict[str, int]]:
    """pandas: net units per stock code of the customers of each published segment, zeros left out."""
    segment = lines["customer_id"].map(published)
    units = lines[segment.notna()].groupby([segment.dropna().astype(int), "stock_code"])["quantity"].sum()
    expected: dict[int, dict[str, int]] = {}
    for (seg, code), n in units[units != 0].items():
        expected.setdefault(int(seg), {})[code] = int(n)
    return expected
