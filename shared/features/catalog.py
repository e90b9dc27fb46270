"""Which stock codes are products.

Online Retail mixes fees and bookkeeping lines into invoices. They are real money
but not product demand, so they are kept out of product features (spend, baskets,
distinct products) and summed separately as ``non_product_amount``. The list is
explicit so that a reader can check it against the data:

========================  ===========================================
code                      meaning in the data
========================  ===========================================
POST, DOT, C2             postage, dotcom postage, carriage
M, m                      manual adjustment
D                         discount
S                         samples
B                         adjust bad debt
BANK CHARGES, AMAZONFEE   bank and marketplace fees
CRUK                      CRUK commission
PADS                      pads to match cushions (priced 0.001)
gift_0001_*               gift vouchers
DCGS*                     dotcom gift sets booked manually
========================  ===========================================
"""

from __future__ import annotations

NON_PRODUCT_CODES: frozenset[str] = frozenset(
    {"POST", "DOT", "C2", "M", "m", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"}
)
NON_PRODUCT_PREFIXES: tuple[str, ...] = ("gift_0001_", "DCGS")


def is_product(stock_code: str) -> bool:
    """True for merchandise lines, False for fees, postage and bookkeeping codes."""
    return stock_code not in NON_PRODUCT_CODES and not stock_code.startswith(NON_PRODUCT_PREFIXES)
