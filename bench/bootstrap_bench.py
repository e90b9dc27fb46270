"""Bootstrap speed on the full year, against a plain pandas groupby, and .xlsx reading speed.

The baseline groupby computes the scalar aggregates only (sum/count/nunique/min/max
per customer): the ratio says what exactness (sets, month series, features) and
the fit cost on top of the bare pandas floor.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import pandas as pd

from worker.bootstrap.batch_aggregates import batch_aggregates, feature_frame
from worker.bootstrap.cleaning import clean
from worker.bootstrap.loading import load_history
from worker.bootstrap.model_fit import fit_model
from worker.bootstrap.settings import BootstrapSettings

AS_OF = datetime(2011, 12, 10)
FIXED_K = 8  # the k chosen by silhouette on the window to 2011-06-01
XLSX_ROWS = 100_000

T = TypeVar("T")


def _timed(function: Callable[..., T], *args: object, **kwargs: object) -> tuple[T, float]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


def _bootstrap(history: pd.DataFrame) -> int:
    cleaned = clean(history)
    features = feature_frame(batch_aggregates(cleaned.customers), AS_OF)
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
    _, bootstrap = _timed(_bootstrap, history)
    _, groupby = _timed(_plain_groupby, history)
    print(f"load {len(history):,} rows: {load:.2f} s")
    print(
        f"bootstrap (clean + aggregates + features + fit k={FIXED_K}, n_init=10): {bootstrap:.2f} s; "
        f"plain pandas groupby: {groupby:.3f} s; ratio {bootstrap / groupby:.0f}x"
    )
    return {
        "load_s": load,
        "bootstrap_s": bootstrap,
        "plain_groupby_s": groupby,
        "bootstrap_over_groupby": bootstrap / groupby,
        **_xlsx_times(dataset),
    }


if __name__ == "__main__":
    run(Path(os.environ.get("SEG_DATASET", "../shared/data/online_retail.csv.xz")))
