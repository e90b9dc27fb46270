"""Bootstrap speed on the full year, against a plain pandas groupby, and .xlsx reading speed.

The bootstrap's own work per customer (clean, the exact aggregates, features, the
members hashes and every record as seeded) is timed against a plain pandas groupby
of the scalar aggregates (sum/count/nunique/min/max per customer) over the same
loaded frame: the ratio says what exactness (distinct counts in event order, the
month window, features, the seed payload) costs on top of the bare pandas floor.
The k-means fit (k-means++, 10 restarts) does not depend on how the aggregates
are computed; it is timed beside, as is the load.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from shared.features.clock import to_micros
from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.model_fit import fit_model
from worker.bootstrap.seed_records import build_seed
from worker.bootstrap.settings import BootstrapSettings

AS_OF = datetime(2011, 12, 10)
FIXED_K = 8  # the k chosen by silhouette on the window to 2011-06-01
XLSX_ROWS = 100_000
PARTITIONS = 12
REPEATS = 5

T = TypeVar("T")


def _timed(function: Callable[..., T], *args: object, **kwargs: object) -> tuple[T, float]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def _aggregate_and_records(history: pd.DataFrame) -> pd.DataFrame:
    """Everything the bootstrap computes per customer, up to the records it seeds (no fit)."""
    cleaned = clean(history)
    aggregates = batch_aggregates(cleaned.customers)
    features = feature_frame(aggregates, AS_OF)
    values = features.to_numpy()
    segments = np.zeros(len(features), dtype=np.int64)
    records = build_seed(cleaned.customers, aggregates, PARTITIONS, values, values, segments, to_micros(AS_OF))
    records.fields(np.arange(len(records.ids)))
    return features


def _fit(features: pd.DataFrame) -> int:
    return fit_model(features, BootstrapSettings(k=FIXED_K, n_init=10)).k


def _plain_groupby(history: pd.DataFrame) -> pd.DataFrame:
    rows = history[history["customer_id"].notna()]
    rows = rows.assign(amount=rows["quantity"] * rows["unit_price"])
    return rows.groupby("customer_id").agg(
        spend=("amount", "sum"),
        lines=("amount", "size"),
        invoices=("invoice_no", "nunique"),
        products=("stock_code", "nunique"),
        first=("invoice_date", "min"),
        last=("invoice_date", "max"),
    )


def _xlsx_times(dataset: Path) -> dict[str, float]:
    """Read the first rows of the real file as .xlsx with calamine and with openpyxl."""
    try:
        from openpyxl import Workbook
    except ImportError:
        print("xlsx: openpyxl is not installed; skipped")
        return {}
    sample = pd.read_csv(dataset, dtype=str, nrows=XLSX_ROWS)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "online_retail_sample.xlsx"
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("Online Retail")
        sheet.append(list(sample.columns))
        for row in sample.itertuples(index=False):
            sheet.append(list(row))
        workbook.save(path)
        _, calamine = _timed(pd.read_excel, path, engine="calamine")
        _, openpyxl = _timed(pd.read_excel, path, engine="openpyxl")
    ratio = openpyxl / calamine
    print(f"xlsx ({XLSX_ROWS:,} rows): calamine {calamine:.2f} s, openpyxl {openpyxl:.2f} s, ratio {ratio:.1f}x")
    return {"xlsx_calamine_s": calamine, "xlsx_openpyxl_s": openpyxl, "xlsx_openpyxl_over_calamine": ratio}


def run(dataset: Path) -> dict[str, float]:
    """Time the bootstrap stages and the baselines on ``dataset``; print and return the figures."""
    history, load = _timed(load_history, dataset)
    bootstrap, groupby = [], []
    for _ in range(REPEATS):  # alternating, best of each: the 2 CPUs are shared
        features, seconds = _timed(_aggregate_and_records, history)
        bootstrap.append(seconds)
        groupby.append(_timed(_plain_groupby, history)[1])
    _, fit = _timed(_fit, features)
    ratio = min(bootstrap) / min(groupby)
    print(f"load {len(history):,} rows: {load:.2f} s")
    print(
        f"bootstrap (clean + aggregates + features + members + records): {min(bootstrap):.3f} s; "
        f"plain pandas groupby: {min(groupby):.3f} s; ratio {ratio:.2f}x (goal <= 3; best of {REPEATS}, alternating)"
    )
    print(f"fit k={FIXED_K}, n_init=10 on {len(features):,} customers: {fit:.2f} s")
    return {
        "load_s": load,
        "bootstrap_s": min(bootstrap),
        "plain_groupby_s": min(groupby),
        "bootstrap_over_groupby": ratio,
        "fit_s": fit,
        **_xlsx_times(dataset),
    }


if __name__ == "__main__":
    run(Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz")))
