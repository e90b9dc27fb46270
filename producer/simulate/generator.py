"""The simulated invoice lines, built with vectorised numpy in five steps.

1. customers: archetype, country, activity window;
2. invoices: Poisson counts per window, event times from :mod:`seasonality`,
   plus guest invoices sized so ~25% of lines have no customer;
3. product lines: basket size, product by archetype affinity, quantity;
4. drift (``order-value-shift``), cancellations (copying the prices paid),
   postage and manual lines, drift (``churn``);
5. invoice numbers in event-time order.

Drift is applied after the base data is drawn and uses its own random stream, so
the same seed with and without drift gives the same customers and baskets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from producer.simulate.archetypes import Archetype
from producer.simulate.catalogue import CATEGORIES, Catalogue
from producer.simulate.drift import DriftEpisode
from producer.simulate.seasonality import daily_intensity, sample_days, sample_seconds_of_day

FIRST_INVOICE = 536365
FIRST_CUSTOMER = 12346
GUEST_LINE_SHARE = 0.25
GUEST_LINES_PER_INVOICE = 20.0
BASE_QUANTITIES = np.array([1, 2, 3, 4, 6, 8, 10, 12, 24])
BASE_QUANTITY_WEIGHTS = np.array([0.12, 0.16, 0.08, 0.1, 0.18, 0.08, 0.08, 0.14, 0.06])
COUNTRIES = ("Germany", "France", "EIRE", "Spain", "Netherlands", "Belgium", "Switzerland", "Portugal", "Norway")
UK_SHARE = 0.88
POSTAGE_PROBABILITY = 0.7  # of invoices shipped abroad
MANUAL_PROBABILITY = 0.003
FAVOURITE_WEIGHT = 4.0
CLOSING_SECOND = 20 * 3600  # a late cancellation is booked by closing time of the last day


@dataclass(frozen=True)
class Population:
    """Who the customers are (the ground truth) and what drift did."""

    customer_ids: np.ndarray  # str, e.g. "17850"
    archetypes: np.ndarray  # index into the archetype tuple
    drift_notes: list[dict[str, object]]


@dataclass
class _Lines:
    """Line table under construction; ``invoice`` indexes the invoice arrays."""

    invoice: np.ndarray
    product: np.ndarray  # catalogue index, or -1 for a non-product line
    quantity: np.ndarray
    price: np.ndarray

    def take(self, mask: np.ndarray) -> _Lines:
        return _Lines(self.invoice[mask], self.product[mask], self.quantity[mask], self.price[mask])

    def extend(self, other: _Lines) -> _Lines:
        return _Lines(*(np.concatenate([a, b]) for a, b in zip(self.fields(), other.fields(), strict=True)))

    def fields(self) -> tuple[np.ndarray, ...]:
        return self.invoice, self.product, self.quantity, self.price


@dataclass
class _Invoices:
    """Invoice table: owner (-1 = guest), seconds since start, cancellation flag."""

    customer: np.ndarray
    seconds: np.ndarray
    cancellation: np.ndarray


def generate(
    rng: np.random.Generator,
    drift_rng: np.random.Generator,
    archetypes: tuple[Archetype, ...],
    catalogue: Catalogue,
    customers: int,
    start: datetime,
    days: int,
    drift: tuple[DriftEpisode, ...],
) -> tuple[Rows, Population]:
    """The Online Retail rows (numeric until written, :class:`Rows`) and the ground truth."""
    kind = _assign_archetypes(rng, archetypes, customers)
    customer_ids = (FIRST_CUSTOMER + rng.permutation(customers)).astype(str)
    abroad = rng.random(customers) > UK_SHARE
    country = np.where(abroad, rng.choice(COUNTRIES, size=customers), "United Kingdom")
    intensity = daily_intensity(start, days)
    invoices = _customer_invoices(rng, archetypes, kind, intensity, days)
    lines = _product_lines(rng, archetypes, catalogue, kind, invoices)
    invoices, lines = _add_guests(rng, catalogue, intensity, invoices, lines)
    notes: list[dict[str, object]] = []
    for episode in drift:
        if episode.kind == "order-value-shift":
            notes.append(_shift_order_value(episode, start, invoices, lines))
    invoices, lines = _add_cancellations(rng, archetypes, kind, invoices, lines, days)
    lines = _add_non_product_lines(rng, invoices, lines, abroad)
    for episode in drift:
        if episode.kind == "churn":
            keep, note = _churn(drift_rng, episode, start, archetypes, kind, customer_ids, invoices)
            lines = lines.take(keep[lines.invoice])
            notes.append(note)
    rows = _rows(invoices, lines, catalogue, customer_ids, country, start)
    return rows, Population(customer_ids, kind, notes)


def _assign_archetypes(rng: np.random.Generator, archetypes: tuple[Archetype, ...], customers: int) -> np.ndarray:
    """Exact shares (largest remainder), shuffled."""
    shares = np.array([a.share for a in archetypes]) / sum(a.share for a in archetypes)
    counts = np.floor(shares * customers).astype(int)
    counts[np.argsort(-(shares * customers - counts))[: customers - counts.sum()]] += 1
    return rng.permutation(np.repeat(np.arange(len(archetypes)), counts))


def _customer_invoices(
    rng: np.random.Generator, archetypes: tuple[Archetype, ...], kind: np.ndarray, intensity: np.ndarray, days: int
) -> _Invoices:
    starts = np.array([a.start for a in archetypes])[kind]
    ends = np.array([a.end for a in archetypes])[kind]
    lo = (rng.uniform(starts[:, 0], starts[:, 1]) * days).astype(int)
    hi = np.maximum(lo + 14, (rng.uniform(ends[:, 0], ends[:, 1]) * days).astype(int)).clip(max=days)
    lo = np.minimum(lo, hi - 14)
    rate = np.array([a.invoices_per_year for a in archetypes])[kind]
    counts = np.maximum(1, rng.poisson(rate * (hi - lo) / 365.25))
    owner = np.repeat(np.arange(len(kind)), counts)
    day = sample_days(rng, intensity, lo[owner], hi[owner])
    seconds = day * 86_400 + sample_seconds_of_day(rng, len(owner))
    return _Invoices(owner, seconds, np.zeros(len(owner), dtype=bool))


def _product_weights(catalogue: Catalogue, archetype: Archetype | None) -> np.ndarray:
    """Choice probabilities over the catalogue; guests (None) buy in proportion to popularity alone."""
    popularity = 1.0 / np.sqrt(1.0 + np.arange(len(catalogue)) % 37)
    if archetype is None:
        weights = popularity
    else:
        favourite = np.isin(catalogue.categories, [CATEGORIES.index(c) for c in archetype.categories])
        weights = popularity * np.where(favourite, FAVOURITE_WEIGHT, 1.0) * catalogue.prices**archetype.price_affinity
    return weights / weights.sum()


def _draw_lines(
    rng: np.random.Generator, catalogue: Catalogue, invoice: np.ndarray, archetype: Archetype | None, basket: float
) -> _Lines:
    """Lines for ``invoice`` (indices): basket sizes, products and quantities of one archetype."""
    sizes = 1 + rng.poisson(basket - 1, size=len(invoice))
    owner = np.repeat(invoice, sizes)
    product = rng.choice(len(catalogue), size=len(owner), p=_product_weights(catalogue, archetype))
    base = rng.choice(BASE_QUANTITIES, size=len(owner), p=BASE_QUANTITY_WEIGHTS / BASE_QUANTITY_WEIGHTS.sum())
    scale = 1.0 if archetype is None else archetype.quantity_scale
    quantity = np.maximum(1, np.rint(base * scale)).astype(np.int64)
    return _Lines(owner, product, quantity, catalogue.prices[product])


def _product_lines(
    rng: np.random.Generator,
    archetypes: tuple[Archetype, ...],
    catalogue: Catalogue,
    kind: np.ndarray,
    invoices: _Invoices,
) -> _Lines:
    invoice_kind = kind[invoices.customer]
    parts = [
        _draw_lines(rng, catalogue, np.flatnonzero(invoice_kind == index), archetype, archetype.lines_per_invoice)
        for index, archetype in enumerate(archetypes)
    ]
    lines = parts[0]
    for part in parts[1:]:
        lines = lines.extend(part)
    return _dedupe(lines)


def _dedupe(lines: _Lines) -> _Lines:
    """One line per (invoice, product): a repeated product would be an exact duplicate row."""
    key = lines.invoice * 1_000_003 + lines.product
    _, first = np.unique(key, return_index=True)
    return lines.take(np.sort(first))


def _add_guests(
    rng: np.random.Generator, catalogue: Catalogue, intensity: np.ndarray, invoices: _Invoices, lines: _Lines
) -> tuple[_Invoices, _Lines]:
    """Guest invoices (no customer id) carrying about :data:`GUEST_LINE_SHARE` of all lines."""
    target = len(lines.invoice) * GUEST_LINE_SHARE / (1 - GUEST_LINE_SHARE)
    count = max(1, round(target / GUEST_LINES_PER_INVOICE))
    first = len(invoices.customer)
    days = len(intensity)
    day = sample_days(rng, intensity, np.zeros(count, dtype=int), np.full(count, days))
    seconds = day * 86_400 + sample_seconds_of_day(rng, count)
    guests = _draw_lines(rng, catalogue, np.arange(first, first + count), None, GUEST_LINES_PER_INVOICE)
    merged = _Invoices(
        np.concatenate([invoices.customer, np.full(count, -1)]),
        np.concatenate([invoices.seconds, seconds]),
        np.zeros(first + count, dtype=bool),
    )
    return merged, lines.extend(_dedupe(guests))


def _invoice_values(invoices: _Invoices, lines: _Lines) -> np.ndarray:
    return np.bincount(lines.invoice, weights=lines.quantity * lines.price, minlength=len(invoices.customer))


def _shift_order_value(episode: DriftEpisode, start: datetime, invoices: _Invoices, lines: _Lines) -> dict[str, object]:
    at = (episode.at - start).total_seconds()
    values = _invoice_values(invoices, lines)
    before = (invoices.seconds < at) & (invoices.customer >= 0) & (values > 0)
    sigma = float(np.std(np.log(values[before])))
    factor = float(np.exp(episode.magnitude * sigma))
    after = invoices.seconds[lines.invoice] >= at
    lines.price = np.where(after, np.maximum(0.01, np.round(lines.price * factor, 2)), lines.price)
    return {
        "kind": episode.kind,
        "at": episode.at.isoformat(),
        "magnitude": episode.magnitude,
        "sigma_log_order_value": sigma,
        "price_factor": factor,
    }


def _add_cancellations(
    rng: np.random.Generator,
    archetypes: tuple[Archetype, ...],
    kind: np.ndarray,
    invoices: _Invoices,
    lines: _Lines,
    days: int,
) -> tuple[_Invoices, _Lines]:
    """For some customer invoices, a later ``C`` invoice returning part of one line at the price paid."""
    probability = np.array([a.cancel_probability for a in archetypes])[kind]
    owned = invoices.customer >= 0
    chance = np.where(owned, probability[np.where(owned, invoices.customer, 0)], 0.0)
    cancelled = np.flatnonzero(rng.random(len(chance)) < chance)
    order = np.argsort(lines.invoice, kind="stable")
    sizes = np.bincount(lines.invoice, minlength=len(chance))
    first_line = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    picked = order[first_line[cancelled] + (rng.random(len(cancelled)) * sizes[cancelled]).astype(int)]
    delay = rng.integers(1800, 3 * 86_400, size=len(cancelled))
    seconds = np.minimum(invoices.seconds[cancelled] + delay, (days - 1) * 86_400 + CLOSING_SECOND)
    first = len(invoices.customer)
    returned = -(1 + (rng.random(len(picked)) * lines.quantity[picked]).astype(np.int64))
    merged = _Invoices(
        np.concatenate([invoices.customer, invoices.customer[cancelled]]),
        np.concatenate([invoices.seconds, seconds]),
        np.concatenate([invoices.cancellation, np.ones(len(cancelled), dtype=bool)]),
    )
    extra = _Lines(np.arange(first, first + len(cancelled)), lines.product[picked], returned, lines.price[picked])
    return merged, lines.extend(extra)


def _add_non_product_lines(rng: np.random.Generator, invoices: _Invoices, lines: _Lines, abroad: np.ndarray) -> _Lines:
    """POST on most invoices shipped abroad, and a rare manual (M) adjustment."""
    purchase = ~invoices.cancellation
    shipped = purchase & (invoices.customer >= 0) & abroad[np.maximum(invoices.customer, 0)]
    postage = np.flatnonzero(shipped & (rng.random(len(purchase)) < POSTAGE_PROBABILITY))
    manual = np.flatnonzero(purchase & (rng.random(len(purchase)) < MANUAL_PROBABILITY))
    post = _Lines(
        postage,
        np.full(len(postage), -1),
        rng.integers(1, 4, len(postage)),
        rng.choice([15.0, 18.0, 40.0], len(postage)),
    )
    adjust = _Lines(
        manual,
        np.full(len(manual), -2),
        np.ones(len(manual), dtype=np.int64),
        np.round(rng.uniform(0.5, 50.0, len(manual)), 2),
    )
    return lines.extend(post).extend(adjust)


def _churn(
    rng: np.random.Generator,
    episode: DriftEpisode,
    start: datetime,
    archetypes: tuple[Archetype, ...],
    kind: np.ndarray,
    customer_ids: np.ndarray,
    invoices: _Invoices,
) -> tuple[np.ndarray, dict[str, object]]:
    """Invoices kept after a share of loyal customers stopped buying at ``episode.at``."""
    loyal = np.flatnonzero(kind == [a.name for a in archetypes].index("loyal"))
    gone = np.sort(rng.choice(loyal, size=round(episode.magnitude * len(loyal)), replace=False))
    at = (episode.at - start).total_seconds()
    drop = np.isin(invoices.customer, gone) & (invoices.seconds >= at)
    note = {
        "kind": episode.kind,
        "at": episode.at.isoformat(),
        "magnitude": episode.magnitude,
        "customers": sorted(customer_ids[gone].tolist()),
    }
    return ~drop, note


@dataclass(frozen=True)
class Rows:
    """The lines in file order as numeric columns (tens of bytes a line); text is made a chunk at a time.

    Why: formatted as one frame of strings, a million customers' month (15 million
    lines) takes about 14 GB; formatted and written in chunks, the text costs one chunk.
    """

    invoices: _Invoices
    lines: _Lines  # in file order: invoices numbered in event-time order, lines in invoice order
    rank: np.ndarray  # invoice index -> its position in event-time order
    catalogue: Catalogue
    customer_ids: np.ndarray
    country: np.ndarray
    start: datetime

    def __len__(self) -> int:
        return len(self.lines.invoice)

    def frames(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """Source-format rows (source column names, strings as written), ``chunk_rows`` at a time."""
        for first in range(0, len(self), chunk_rows):
            yield self._frame(slice(first, first + chunk_rows))

    def _frame(self, part: slice) -> pd.DataFrame:
        invoices, catalogue = self.invoices, self.catalogue
        invoice, product = self.lines.invoice[part], self.lines.product[part]
        owner = invoices.customer[invoice]
        numbers = (FIRST_INVOICE + self.rank[invoice]).astype(str)
        number = np.where(invoices.cancellation[invoice], np.char.add("C", numbers), numbers)
        codes = np.where(product >= 0, catalogue.codes[np.maximum(product, 0)], np.where(product == -1, "POST", "M"))
        names = np.where(
            product >= 0, catalogue.descriptions[np.maximum(product, 0)], np.where(product == -1, "POSTAGE", "Manual")
        )
        dates = pd.Timestamp(self.start) + pd.to_timedelta(invoices.seconds[invoice], unit="s")
        guest = owner < 0
        return pd.DataFrame(
            {
                "InvoiceNo": number,
                "StockCode": codes,
                "Description": names,
                "Quantity": self.lines.quantity[part],
                "InvoiceDate": dates.strftime("%Y-%m-%d %H:%M:%S"),
                "UnitPrice": np.round(self.lines.price[part], 2),
                "CustomerID": np.where(guest, "", np.char.add(self.customer_ids[np.maximum(owner, 0)], ".0")),
                "Country": np.where(guest, "United Kingdom", self.country[np.maximum(owner, 0)]),
            }
        )


def _rows(
    invoices: _Invoices,
    lines: _Lines,
    catalogue: Catalogue,
    customer_ids: np.ndarray,
    country: np.ndarray,
    start: datetime,
) -> Rows:
    """The lines in file order: invoices numbered in event-time order, lines in invoice order."""
    used = np.unique(lines.invoice)
    rank = np.empty(len(invoices.customer), dtype=np.int64)
    rank[used] = np.argsort(np.argsort(invoices.seconds[used], kind="stable"), kind="stable")
    order = np.lexsort((np.arange(len(lines.invoice)), rank[lines.invoice]))
    return Rows(invoices, lines.take(order), rank, catalogue, customer_ids, country, start)
