"""Which of a segment's median features describe it to a person, and under which short labels.

The ``segments`` tool's table and the report's profile chart show the same columns,
so an analyst reads one segment the same way in both.
"""

from __future__ import annotations

PROFILE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("recency_days", "recency d"),
    ("frequency", "invoices"),
    ("monetary", "spend"),
    ("avg_order_value", "order value"),
    ("tenure_days", "tenure d"),
    ("cancellation_rate", "cancel rate"),
)
