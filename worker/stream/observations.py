"""What the worker reports to the drift monitor: completed purchase invoices and scored customers.

Why invoices are held back: an invoice's lines share one event time and arrive
together, but a batch can end in the middle of one. An invoice is reported once
its partition has moved past its event time, so its value and line count are
whole. (An invoice still open when its partition is revoked or the worker dies
is not reported: a few invoices at most, to a monitor that looks at hundreds.)
The statistics match :func:`worker.drift.invoice_table.invoice_table`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from shared.contracts.drift_observation import AssignmentObservation, InvoiceObservation
from shared.features.vector import SECONDS_PER_DAY


@dataclass
class _OpenInvoice:
    partition: int
    event_time: datetime
    customer_id: str
    days_since_previous: float | None
    value: float = 0.0
    lines: int = 0


@dataclass
class ObservationCollector:
    """Gathers observations during a batch; :meth:`take` hands them out per partition."""

    open_invoices: dict[tuple[str, str], _OpenInvoice] = field(default_factory=dict)
    assignments: dict[int, list[AssignmentObservation]] = field(default_factory=lambda: defaultdict(list))

    def purchase_line(
        self,
        partition: int,
        customer_id: str,
        invoice_no: str,
        moment: datetime,
        amount: float,
        previous: datetime | None,
    ) -> None:
        """A product purchase line, before it is folded (``previous`` = the customer's last purchase until now)."""
        key = (customer_id, invoice_no)
        invoice = self.open_invoices.get(key)
        if invoice is None:
            days = None if previous is None else (moment - previous).total_seconds() / SECONDS_PER_DAY
            invoice = self.open_invoices[key] = _OpenInvoice(partition, moment, customer_id, days)
        invoice.value += amount
        invoice.lines += 1

    def assignment(
        self, partition: int, moment: datetime, customer_id: str, before: int | None, after: int, distance: float
    ) -> None:
        self.assignments[partition].append(
            AssignmentObservation(
                event_time=moment, customer_id=customer_id, before=before, after=after, distance=distance
            )
        )

    def take(
        self, partition_times: dict[int, datetime]
    ) -> dict[int, tuple[list[InvoiceObservation], list[AssignmentObservation]]]:
        """Completed invoices and all assignments so far, by partition; forgets what it returns."""
        out: dict[int, tuple[list[InvoiceObservation], list[AssignmentObservation]]] = defaultdict(lambda: ([], []))
        for key, invoice in list(self.open_invoices.items()):
            if invoice.event_time < partition_times.get(invoice.partition, invoice.event_time):
                out[invoice.partition][0].append(
                    InvoiceObservation(
                        event_time=invoice.event_time,
                        customer_id=invoice.customer_id,
                        order_value=invoice.value,
                        lines=invoice.lines,
                        days_since_previous=invoice.days_since_previous,
                    )
                )
                del self.open_invoices[key]
        for partition, rows in self.assignments.items():
            out[partition][1].extend(rows)
        self.assignments.clear()
        return dict(out)

    def release(self, partitions: set[int]) -> None:
        """Forget what belongs to revoked partitions."""
        for key in [key for key, invoice in self.open_invoices.items() if invoice.partition in partitions]:
            del self.open_invoices[key]
        for partition in partitions:
            self.assignments.pop(partition, None)
