"""The one feature definition, on a customer small enough to compute by hand (README's features table)."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pytest

from shared.contracts.invoice import InvoiceLine
from shared.features import CustomerAggregates, apply_line, compute_features
from shared.features.aggregates import classify
from shared.features.scaling import fit_transform, signed_log1p, transform_matrix, transform_vector
from shared.features.vector import FEATURE_NAMES

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
    for item in lines:
        apply_line(aggregates, item)
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
    assert aggregates.product_units == {"85123A": 5, "22423": 1}
    assert aggregates.units == 7


def test_arrival_order_does_not_change_anything() -> None:
    assert folded(LINES[::-1]) == folded(LINES)


def test_the_json_record_round_trips_exactly() -> None:
    aggregates = folded(LINES)
    assert CustomerAggregates.from_json(aggregates.to_json()) == aggregates
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
        apply_line(CustomerAggregates(customer_id="c1"), line("536005", "85123A", 1, 2.0, "2011-03-01", customer=None))


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
