"""What the bootstrap writes per customer, built column-wise: record fields and members hashes.

Why column-wise: at a million customers a Python object per customer (a dict of
its invoices, a groupby row per product) is most of the bootstrap's time and
memory. Here the members (``i:{invoice}`` per product invoice, ``p:{code}`` =
2 × net units + 1 if bought) come from integer codes with one sort, and each
customer's fields are a slice of flat arrays (:class:`SeedRecords`), which the
seeding script takes a chunk of customers at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.features.aggregates import AggregateColumns
from shared.features.clock import NO_TIME
from shared.features.fold import PURCHASE
from shared.partitioner import partitions_of
from shared.state.customer_record import NO_SEGMENT, decision_columns
from worker.bootstrap.batch_aggregates import BatchAggregates, codes_of, kind_codes, scored_rows


@dataclass(frozen=True)
class Members:
    """Every customer's members hash as flat columns, grouped by customer row: ``start[row]:start[row + 1]``."""

    names: np.ndarray  # field names (object array of str)
    values: np.ndarray  # int64
    start: np.ndarray  # len(customers) + 1 offsets

    def pairs(self, row: int) -> list[str | int]:
        """The row's field/value pairs, flat."""
        part = slice(int(self.start[row]), int(self.start[row + 1]))
        flat = np.empty(2 * (part.stop - part.start), dtype=object)
        flat[0::2], flat[1::2] = self.names[part], self.values[part].tolist()
        return flat.tolist()


def members(customers: pd.DataFrame, aggregates: BatchAggregates) -> Members:
    """The members hashes of the cleaned customer lines, from the pairs the aggregates were folded with."""
    kind = kind_codes(customers["kind"])
    _, invoices = codes_of(customers["invoice_no"])
    _, stocks = codes_of(customers["stock_code"])
    invoice_pairs, stock_pairs = aggregates.invoices, aggregates.products
    units = np.zeros(len(stock_pairs.row), dtype=np.int64)
    np.add.at(units, stock_pairs.pair, customers["quantity"].to_numpy(np.int64)[stock_pairs.lines])
    bought = (
        np.bincount(stock_pairs.pair, weights=kind[stock_pairs.lines] == PURCHASE, minlength=len(stock_pairs.row)) > 0
    )
    invoice_names = ("i:" + invoices.astype(str)).to_numpy(object)
    stock_names = ("p:" + stocks.astype(str)).to_numpy(object)
    owner = np.concatenate([invoice_pairs.row, stock_pairs.row])
    order = np.argsort(owner, kind="stable")
    names = np.concatenate([invoice_names[invoice_pairs.code], stock_names[stock_pairs.code]])[order]
    values = np.concatenate([np.ones(len(invoice_pairs.row), dtype=np.int64), 2 * units + bought])[order]
    start = np.searchsorted(owner[order], np.arange(len(aggregates) + 1))
    return Members(names, values, start)


@dataclass(frozen=True)
class SeedRecords:
    """Every customer's record, as columns by customer row, and members.

    The record fields are made a chunk of rows at a time (:meth:`fields`): all of a
    million customers' field texts at once would be most of the bootstrap's memory.
    """

    ids: list[str]
    partition: np.ndarray  # of each customer row
    columns: AggregateColumns
    features: np.ndarray  # one row per customer, NaN where none was scored
    vectors: np.ndarray
    segment: np.ndarray  # the seeded segment (assigned and published), NO_SEGMENT where unscored
    as_of: int
    members: Members
    scored: int

    def fields(self, rows: np.ndarray) -> list[list[str]]:
        """The record of each of ``rows``: flat field/value lists."""
        n, segment = len(rows), self.segment[rows].tolist()
        features, vectors = self.features[rows], self.vectors[rows]
        decisions = decision_columns(
            features, vectors, [self.as_of] * n, segment, segment, [NO_TIME] * n, [0] * n, [""] * n
        )
        columns = self.columns.packed_columns(rows) | decisions
        template = [x for name in columns for x in (name, "")]
        records = []
        for values in zip(*columns.values(), strict=True):
            record = template.copy()
            record[1::2] = values
            records.append(record)
        return records


def seed_records(
    ids: list[str],
    partition: np.ndarray,
    columns: AggregateColumns,
    scored_rows: np.ndarray,
    features: np.ndarray,
    vectors: np.ndarray,
    segments: np.ndarray,
    as_of: int,
    members_: Members,
) -> SeedRecords:
    """Records of every customer row: aggregates, and the bootstrap's decision for the scored rows.

    ``features``, ``vectors`` and ``segments`` are aligned with ``scored_rows``.
    """
    n = len(ids)
    decided = np.full((n, features.shape[1] if features.ndim == 2 else 0), np.nan)
    vector = np.full((n, vectors.shape[1] if vectors.ndim == 2 else 0), np.nan)
    decided[scored_rows], vector[scored_rows] = features, vectors
    segment = np.full(n, NO_SEGMENT, dtype=np.int64)
    segment[scored_rows] = segments
    return SeedRecords(ids, partition, columns, decided, vector, segment, as_of, members_, len(scored_rows))


def build_seed(
    customer_lines: pd.DataFrame,
    aggregates: BatchAggregates,
    partitions: int,
    features: np.ndarray,
    vectors: np.ndarray,
    segments: np.ndarray,
    as_of: int,
) -> SeedRecords:
    """Every customer's record and members; ``features``/``vectors``/``segments`` follow :func:`scored_rows`."""
    partition = partitions_of(aggregates.ids, partitions)
    members_ = members(customer_lines, aggregates)
    return seed_records(
        aggregates.ids,
        partition,
        aggregates.columns,
        scored_rows(aggregates),
        features,
        vectors,
        segments,
        as_of,
        members_,
    )
