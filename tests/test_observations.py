"""The worker writes drift observations without pydantic: the bytes must be the contract's own."""

from __future__ import annotations

from datetime import datetime

from shared.contracts.drift_observation import AssignmentObservation, DriftObservations, InvoiceObservation
from worker.stream.observations import Observations


def test_a_share_encodes_as_the_pydantic_contract_does_byte_for_byte() -> None:
    share = Observations()
    at = datetime(2011, 6, 1, 8, 26, 0, 123456)
    share.invoice(at, "17850", 123.45, 3, None)
    share.invoice(datetime(2011, 6, 2), "12346", 0.1 + 0.2, 1, 2.5e-7)
    share.assignment(at, "17850", None, 2, 0.3333333333333333, [0.1, -1e-7, 3.0, 1e15])
    share.assignment(datetime(2011, 6, 2, 23, 59, 59), "12346", 4, 0, 0.0, [2.0])

    encoded = share.encode(3, 120, datetime(2011, 6, 2, 23, 59, 59), 7)

    expected = DriftObservations(
        source_partition=3,
        end_offset=120,
        partition_time=datetime(2011, 6, 2, 23, 59, 59),
        model_version=7,
        invoices=[
            InvoiceObservation(
                event_time=at, customer_id="17850", order_value=123.45, lines=3, days_since_previous=None
            ),
            InvoiceObservation(
                event_time=datetime(2011, 6, 2),
                customer_id="12346",
                order_value=0.1 + 0.2,
                lines=1,
                days_since_previous=2.5e-7,
            ),
        ],
        assignments=[
            AssignmentObservation(
                event_time=at,
                customer_id="17850",
                before=None,
                after=2,
                distance=0.3333333333333333,
                vector=[0.1, -1e-7, 3.0, 1e15],
            ),
            AssignmentObservation(
                event_time=datetime(2011, 6, 2, 23, 59, 59),
                customer_id="12346",
                before=4,
                after=0,
                distance=0.0,
                vector=[2.0],
            ),
        ],
    )
    assert encoded == expected.model_dump_json()
    assert DriftObservations.model_validate_json(encoded) == expected


def test_a_huge_float_parses_to_the_same_number() -> None:
    share = Observations()
    share.assignment(datetime(2011, 6, 1), "17850", None, 2, 1e22, [1e300, -1e-300])
    parsed = DriftObservations.model_validate_json(share.encode(0, 1, datetime(2011, 6, 1), 1))
    assert parsed.assignments[0].distance == 1e22 and parsed.assignments[0].vector == [1e300, -1e-300]


def test_an_empty_share_is_valid() -> None:
    encoded = Observations().encode(0, 0, datetime(2011, 1, 1), 1)
    parsed = DriftObservations.model_validate_json(encoded)
    assert parsed.invoices == [] and parsed.assignments == []
