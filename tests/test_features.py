"""The one feature definition, on a customer small enough to compute by hand (README's features table)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from shared.contracts.invoice import InvoiceLine
from shared.features.aggregates import AggregateColumns, CustomerAggregates, Membership, apply_line, classify
from shared.features.clock import month_number, to_micros
from shared.features.fold import CANCELLATION, NON_PRODUCT, PURCHASE, LineBatch, fold
from shared.features.scaling import fit_transform, signed_log1p, transform_matrix, transform_vector
from shared.features.vector import FEATURE_NAMES, compute_features

AS_OF = datetime(2011, 4, 10)


def line(invoice: str, code: str, quantity: int, price: float, at: str, customer: str | None = "c1") -> InvoiceLine:
    return InvoiceLine.create(
        invoice_no=invoice,
        stock_code=code,
        description=None,
        quantity=quantity,
        invoice_date=datetime.fromisoformat(at),
        unit_price=price,
        customer_id=customer,
        country="United Kingdom",
    )


LINES = [
    line("536001", "85123A", 2, 5.0, "2011-01-10 09:00"),  # 10.00
    line("536001", "22423", 1, 4.0, "2011-01-10 09:00"),  # 4.00
    line("536002", "85123A", 4, 5.0, "2011-03-20 12:00"),  # 20.00
    line("536002", "POST", 1, 15.0, "2011-03-20 12:00"),  # postage: not product spend
    line("C536003", "85123A", -1, 5.0, "2011-03-25 10:00"),  # a return: -5.00
    line("536004", "85123A", 3, 0.0, "2011-03-26 10:00"),  # price 0: counted nowhere
]


def folded(lines: list[InvoiceLine]) -> CustomerAggregates:
    aggregates = CustomerAggregates(customer_id="c1")
    membership = Membership()
    for item in lines:
        apply_line(aggregates, item, membership)
    return aggregates


def test_every_feature_as_computed_by_hand() -> None:
    features = compute_features(folded(LINES), AS_OF)
    assert features is not None and list(features) == list(FEATURE_NAMES)
    monthly = [14.0, 0.0, 15.0, 0.0]  # 2011-01 … 2011-04 (as_of's month), the return in March
    mean = sum(monthly) / 4
    expected = {
        "recency_days": 20.5,  # 2011-03-20 12:00 -> 2011-04-10 00:00
        "frequency": 2.0,
        "monetary": 29.0,  # 34 gross - 5 returned
        "avg_order_value": 17.0,
        "distinct_products": 2.0,
        "lines_per_invoice": 1.5,
        "mean_days_between_purchases": 69.125,
        "tenure_days": 89.625,
        "cancellation_rate": 1 / 3,
        "monthly_spend_mean": mean,
        "monthly_spend_std": math.sqrt(sum((v - mean) ** 2 for v in monthly) / 4),
        "monthly_spend_trend": -2.7,
    }
    assert features == pytest.approx(expected, rel=1e-12)


def test_the_aggregates_keep_what_the_features_and_recommendations_need() -> None:
    aggregates = folded(LINES)
    assert (aggregates.lines, aggregates.purchase_lines, aggregates.cancel_lines, aggregates.non_product_lines) == (
        5,
        3,
        1,
        1,
    )
    assert aggregates.non_product_amount == 15.0
    assert (aggregates.invoices, aggregates.cancel_invoices, aggregates.products) == (2, 1, 2)
    assert aggregates.units == 7
    assert aggregates.months == {month_number(datetime(2011, 1, 1)): 14.0, month_number(datetime(2011, 3, 1)): 15.0}


def test_arrival_order_does_not_change_anything() -> None:
    assert folded(LINES[::-1]) == folded(LINES)


def test_the_json_record_round_trips_exactly() -> None:
    aggregates = folded(LINES)
    assert CustomerAggregates.from_json("c1", aggregates.to_json()) == aggregates
    assert aggregates.to_json() == folded(LINES[::-1]).to_json()  # canonical text


def test_a_customer_without_a_purchase_has_no_features() -> None:
    assert compute_features(folded([LINES[3], LINES[4]]), AS_OF) is None


def test_features_follow_the_watermark_not_the_wall_clock() -> None:
    aggregates = folded(LINES)
    earlier, later = compute_features(aggregates, AS_OF), compute_features(aggregates, datetime(2011, 5, 10))
    assert earlier is not None and later is not None
    assert later["recency_days"] - earlier["recency_days"] == 30
    assert later["tenure_days"] - earlier["tenure_days"] == 30
    assert later["monthly_spend_mean"] == pytest.approx(29.0 / 5)  # May is one more zero month


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        (LINES[0], "purchase"),
        (LINES[3], "non_product"),
        (LINES[4], "cancellation"),
        (LINES[5], "invalid_price"),
        (line("536005", "85123A", 1, 2.0, "2011-03-01", customer=None), "guest"),
        (line("536006", "gift_0001_20", 1, 20.0, "2011-03-01"), "non_product"),
    ],
)
def test_cleaning_rules_classify_each_line(item: InvoiceLine, kind: str) -> None:
    assert classify(item) == kind


def test_guest_lines_are_refused_by_customer_aggregates() -> None:
    with pytest.raises(ValueError, match="GuestStats"):
        guest = line("536005", "85123A", 1, 2.0, "2011-03-01", customer=None)
        apply_line(CustomerAggregates(customer_id="c1"), guest, Membership())


def test_scaling_centres_on_the_median_and_divides_by_the_iqr_after_the_log_step() -> None:
    names = ("recency_days", "monetary", "cancellation_rate")
    matrix = np.array(
        [[10.0, 100.0, 0.0], [20.0, 1000.0, 0.0], [30.0, 10.0, 0.0], [40.0, 10_000.0, 0.0], [50.0, 50.0, 0.5]]
    )
    transform = fit_transform(matrix, names)
    assert transform.log_features == ["monetary"]
    scaled = transform_matrix(matrix, transform, names)
    assert np.median(scaled, axis=0) == pytest.approx([0.0, 0.0, 0.0])
    q25, q75 = np.quantile(scaled[:, :2], [0.25, 0.75], axis=0)
    assert q75 - q25 == pytest.approx([1.0, 1.0])
    assert transform.scale[2] == 1.0  # IQR 0: centred, not blown up
    row = dict(zip(names, matrix[4], strict=True))
    assert transform_vector(row, transform, names) == pytest.approx(scaled[4])


def test_signed_log_keeps_the_sign_and_zero() -> None:
    values = np.array([-100.0, -1.0, 0.0, 1.0, 100.0])
    assert signed_log1p(values) == pytest.approx([-math.log1p(100), -math.log(2), 0.0, math.log(2), math.log1p(100)])


def test_the_column_wise_fold_equals_the_one_line_fold_however_the_lines_are_cut() -> None:
    """The worker's update function (:func:`fold`) gives the reference fold's aggregates, in any batching."""
    priced = [item for item in LINES if item.unit_price > 0]
    kinds = {"purchase": PURCHASE, "cancellation": CANCELLATION, "non_product": NON_PRODUCT}
    membership = Membership()
    flags = [
        (
            kind != "non_product" and membership.new_invoice("c1", item.invoice_no),
            kind == "purchase" and membership.new_product("c1", item.stock_code),
        )
        for item, kind in ((item, classify(item)) for item in priced)
    ]
    for cut in range(len(priced) + 1):
        columns = AggregateColumns()
        columns.append(1)
        for part in (slice(0, cut), slice(cut, None)):
            chunk = priced[part]
            times = np.array([to_micros(item.invoice_date) for item in chunk], dtype=np.int64)
            fold(
                columns,
                LineBatch(
                    slot=np.zeros(len(chunk), dtype=np.int64),
                    kind=np.array([kinds[classify(item)] for item in chunk], dtype=np.int8),
                    quantity=np.array([item.quantity for item in chunk], dtype=np.int64),
                    amount=np.array([item.amount for item in chunk]),
                    time=times,
                    month=np.array([month_number(item.invoice_date) for item in chunk], dtype=np.int64),
                    country=columns.countries.codes(item.country for item in chunk),
                    new_invoice=np.array([new for new, _ in flags[part]], dtype=bool),
                    new_product=np.array([new for _, new in flags[part]], dtype=bool),
                ),
            )
        assert columns.get_row(0, "c1") == folded(LINES), cut


def test_monthly_spend_is_kept_over_the_last_twelve_months_only() -> None:
    """Months more than 11 before the customer's latest active month leave the window (and the features)."""
    early = line("536010", "85123A", 1, 100.0, "2010-01-15 10:00")
    late = line("536011", "85123A", 1, 10.0, "2011-03-15 10:00")
    aggregates = folded([early, late])
    assert aggregates.months == {month_number(datetime(2011, 3, 1)): 10.0}
    assert aggregates.first_month == month_number(datetime(2010, 1, 1))
    features = compute_features(aggregates, datetime(2011, 3, 31))
    assert features is not None
    assert features["monthly_spend_mean"] == pytest.approx(10.0 / 12)  # 2010-04 … 2011-03, eleven of them zero
