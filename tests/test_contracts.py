"""The messages every side agrees on: ids, keys, what parses and what is refused."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts.dead_letter import DeadLetter
from shared.contracts.drift_alert import DriftAlert
from shared.contracts.invoice import GUEST_KEY_PREFIX, InvoiceLine
from shared.contracts.segment_change import SegmentChange

FIELDS: dict[str, Any] = {
    "invoice_no": "536365",
    "stock_code": "85123A",
    "description": "WHITE HANGING HEART T-LIGHT HOLDER",
    "quantity": 6,
    "invoice_date": datetime(2010, 12, 1, 8, 26),
    "unit_price": 2.55,
    "customer_id": "17850",
    "country": "United Kingdom",
}


def test_the_event_id_is_a_hash_of_all_eight_fields() -> None:
    line = InvoiceLine.create(**FIELDS)
    assert InvoiceLine.create(**FIELDS).event_id == line.event_id  # a re-sent line is the same event
    for name, other in [("quantity", 7), ("unit_price", 2.56), ("customer_id", None), ("description", None)]:
        assert InvoiceLine.create(**(FIELDS | {name: other})).event_id != line.event_id, name


def test_customers_key_their_lines_and_guests_their_invoice() -> None:
    assert InvoiceLine.create(**FIELDS).partition_key == "17850"
    guest = InvoiceLine.create(**(FIELDS | {"customer_id": None}))
    assert guest.is_guest and guest.partition_key == f"{GUEST_KEY_PREFIX}536365"


def test_a_c_invoice_is_a_cancellation_with_a_negative_amount() -> None:
    line = InvoiceLine.create(**(FIELDS | {"invoice_no": "C536379", "quantity": -6}))
    assert line.is_cancellation and line.amount == pytest.approx(-15.3)


def test_an_invoice_line_round_trips_through_json_and_refuses_unknown_fields() -> None:
    line = InvoiceLine.create(**FIELDS)
    assert InvoiceLine.model_validate_json(line.model_dump_json()) == line
    with pytest.raises(ValidationError, match="extra"):
        InvoiceLine.model_validate(json.loads(line.model_dump_json()) | {"discount": 0.1})


def change(**overrides: object) -> dict[str, object]:
    return {
        "customer_id": "17850",
        "previous": {"id": 2, "name": "big spenders"},
        "current": {"id": 0, "name": "champions"},
        "model_version": 1,
        "event_time": "2011-06-02T10:00:00",
        "reason": "purchase",
        "features": {"recency_days": 0.0},
        "distance_margin": 0.7,
        "sequence": 3,
    } | overrides


def test_a_segment_change_parses_and_a_first_segment_has_no_previous() -> None:
    parsed = SegmentChange.model_validate(change(previous=None, reason="first_purchase", sequence=1))
    assert parsed.previous is None and parsed.current.name == "champions" and parsed.recommendations == []


@pytest.mark.parametrize(
    "wrong", [{"reason": "whim"}, {"sequence": 0}, {"current": {"id": 0}}, {"unexpected": 1}], ids=str
)
def test_a_segment_change_refuses_what_consumers_could_not_trust(wrong: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SegmentChange.model_validate(change(**wrong))


def alert(**overrides: object) -> dict[str, object]:
    return {
        "alert_id": "a1",
        "incident_id": "i1",
        "state": "open",
        "severity": "warning",
        "monitor": "invoice_behaviour",
        "method": "psi",
        "statistic": "log_order_value",
        "value": 0.4,
        "threshold": 0.2,
        "threshold_source": "reference chunks, 4 sigma",
        "window": {"start": "2011-07-01T00:00:00", "end": "2011-07-08T00:00:00", "events": 500, "customers": 300},
        "reference_period": ["2010-12-01T00:00:00", "2011-06-01T00:00:00"],
        "model_version": 1,
    } | overrides


def test_alerts_from_before_contributors_existed_still_parse() -> None:
    parsed = DriftAlert.model_validate(alert())
    assert parsed.contributors == [] and parsed.raises()


def test_an_update_raises_only_for_the_family_that_joined_with_it() -> None:
    joined = {"monitor": "invoice_behaviour", "method": "psi", "statistic": "s", "joined": "2011-07-08T00:00:00"}
    earlier = joined | {"monitor": "customer_activity", "joined": "2011-07-01T00:00:00"}
    assert DriftAlert.model_validate(alert(state="update", contributors=[earlier, joined])).raises()
    assert not DriftAlert.model_validate(alert(state="update", contributors=[earlier])).raises()
    assert not DriftAlert.model_validate(alert(state="closed", contributors=[joined])).raises()


def test_a_dead_letter_carries_its_reason_in_headers_and_value() -> None:
    letter = DeadLetter(
        stage="validate",
        reason="invalid_number",
        error_class="InvalidNumberError",
        error="quantity 'six' is not a number",
        field="quantity",
        raw={"quantity": "six"},
        source="data.csv",
        position="row 7",
    )
    headers = dict(letter.headers())
    assert headers["dlq.reason"] == b"invalid_number" and headers["dlq.stage"] == b"validate"
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter
