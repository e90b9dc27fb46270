"""Readers: both UCI namings, every format, and whole-file failures with actionable messages."""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pytest

from shared.exceptions import CorruptInputError, EmptyInputError, InputError, UnknownLayoutError
from shared.readers import CANONICAL, LAYOUTS, open_rows

ROWS = [
    ["536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", "6", "2010-12-01 08:26:00", "2.55", "17850.0", "UK"],
    ["536366", "22633", "", "-2", "2010-12-01 08:28:00", "1.85", "", "France"],
    ["C536379", "D", "Discount", "x", "not a date", "-27.5", "14527.0", "Café Land"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    lines = [",".join(header), *(",".join(row) for row in rows)]
    text = "\n".join(lines) + "\n"
    openers: dict[str, Callable[..., IO[str]]] = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    opener = openers.get(path.suffix, open)
    with opener(path, "wt", encoding=encoding) as handle:
        handle.write(text)
    return path


def read_all(path: Path, **kwargs: Any) -> pd.DataFrame:
    return pd.concat(list(open_rows(path, **kwargs)))


def expected_frame() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS, columns=list(CANONICAL), dtype=object)
    return frame.where(frame != "", None)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.xz", ".csv.bz2"])
def test_csv_layouts_and_compression_give_canonical_raw_strings(tmp_path: Path, layout: str, suffix: str) -> None:
    path = write_csv(tmp_path / f"in{suffix}", list(LAYOUTS[layout]), ROWS)
    frame = read_all(path)
    assert list(frame.columns) == list(CANONICAL)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), expected_frame())
    assert frame.loc[1, "description"] is None and frame.loc[1, "customer_id"] is None


def test_real_file_streams_in_bounded_chunks(dataset: Path) -> None:
    sizes, first = [], None
    for chunk in open_rows(dataset, chunk_rows=100_000):
        first = chunk if first is None else first
        sizes.append(len(chunk))
    assert sum(sizes) == 541_909 and max(sizes) == 100_000
    assert first is not None and list(first.index[:2]) == [0, 1]
    assert first.iloc[0].to_dict() == {
        "invoice_no": "536365",
        "stock_code": "85123A",
        "description": "WHITE HANGING HEART T-LIGHT HOLDER",
        "quantity": "6",
        "invoice_date": "2010-12-01 08:26:00",
        "unit_price": "2.55",
        "customer_id": "17850.0",
        "country": "United Kingdom",
    }


def typed_frame(columns: dict[str, str]) -> pd.DataFrame:
    """What Excel and Parquet hold: numbers, timestamps and missing cells, not text."""
    return pd.DataFrame(
        {
            columns["invoice_no"]: ["536365", "536366"],
            columns["stock_code"]: ["85123A", "22633"],
            columns["description"]: ["WHITE HANGING HEART", None],
            columns["quantity"]: [6, -2],
            columns["invoice_date"]: pd.to_datetime(["2010-12-01 08:26:00", "2010-12-01 08:28:00"]),
            columns["unit_price"]: [2.55, 1.85],
            columns["customer_id"]: [17850.0, None],
            columns["country"]: ["United Kingdom", "France"],
        }
    )


def assert_typed_rows(frame: pd.DataFrame) -> None:
    rows = frame.reset_index(drop=True).to_dict("records")
    assert rows[0] | {"customer_id": None} == {
        "invoice_no": "536365",
        "stock_code": "85123A",
        "description": "WHITE HANGING HEART",
        "quantity": "6",
        "invoice_date": "2010-12-01 08:26:00",
        "unit_price": "2.55",
        "customer_id": None,
        "country": "United Kingdom",
    }
    assert rows[0]["customer_id"] in {"17850.0", "17850"}
    assert rows[1]["description"] is None and rows[1]["customer_id"] is None and rows[1]["quantity"] == "-2"


def inverse(layout: str) -> dict[str, str]:
    return {canonical: source for source, canonical in LAYOUTS[layout].items()}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_parquet_is_read_in_batches_as_text(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "in.parquet"
    typed_frame(inverse(layout)).to_parquet(path, row_group_size=1)
    chunks = list(open_rows(path, chunk_rows=1))
    assert [len(c) for c in chunks] == [1, 1] and list(chunks[1].index) == [1]
    assert_typed_rows(pd.concat(chunks))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_xlsx_is_read_with_calamine_as_text(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "in.xlsx"
    typed_frame(inverse(layout)).to_excel(path, index=False, engine="openpyxl")
    assert_typed_rows(read_all(path))


def test_unknown_layout_names_missing_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["InvoiceNo", "StockCode", "Qty", "InvoiceDate", "Price", "Country"], [])
    with pytest.raises(UnknownLayoutError, match="Description") as caught:
        read_all(path)
    assert "CustomerID" in str(caught.value) and "Quantity" in str(caught.value)


def test_unknown_layout_in_parquet(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(UnknownLayoutError, match="InvoiceDate"):
        read_all(path)


@pytest.mark.parametrize(
    "content", [b"", b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"]
)
def test_empty_file_or_header_only(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(content)
    with pytest.raises(EmptyInputError):
        read_all(path)


def test_truncated_xz_is_corrupt(tmp_path: Path, dataset: Path) -> None:
    path = tmp_path / "cut.csv.xz"
    path.write_bytes(dataset.read_bytes()[:300_000])
    with pytest.raises(CorruptInputError, match="truncated"):
        read_all(path)


def test_truncated_gz_is_corrupt(tmp_path: Path) -> None:
    whole = write_csv(tmp_path / "whole.csv.gz", list(LAYOUTS["Online Retail"]), ROWS * 2000)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CorruptInputError, match="truncated"):
        read_all(path)


def test_wrong_encoding_says_which_option_fixes_it(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", list(LAYOUTS["Online Retail"]), ROWS, encoding="latin-1")
    with pytest.raises(CorruptInputError, match="--encoding latin-1"):
        read_all(path)
    assert read_all(path, encoding="latin-1").iloc[2]["country"] == "Café Land"


def test_missing_and_unsupported_files_fail_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_rows(tmp_path / "nope.csv")
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(InputError, match="unsupported"):
        open_rows(tmp_path / "in.json")


def test_damaged_parquet_and_xlsx_are_corrupt(tmp_path: Path) -> None:
    for name in ("in.parquet", "in.xlsx"):
        (tmp_path / name).write_bytes(b"definitely not a columnar file")
        with pytest.raises(CorruptInputError):
            read_all(tmp_path / name)
