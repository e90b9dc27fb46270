"""What each line of a batch is: a purchase, a cancellation or not a product (fees, postage).

Why here and column-wise: a batch repeats its stock codes and invoices many times, so
each distinct value is judged once (:func:`shared.features.catalog.is_product`, the
cleaning rules' test) and the verdicts are spread to the lines in C.
"""

from __future__ import annotations

import numpy as np

from shared.features.catalog import is_product
from shared.features.fold import CANCELLATION, NON_PRODUCT, PURCHASE


def product_mask(stock_codes: np.ndarray) -> np.ndarray:
    """:func:`is_product` of each code (an object array of str)."""
    verdict = {code: is_product(code) for code in set(stock_codes)}
    return np.fromiter(map(verdict.__getitem__, stock_codes), dtype=bool, count=len(stock_codes))


def kind_codes(stock_codes: np.ndarray, invoices: np.ndarray) -> np.ndarray:
    """PURCHASE, CANCELLATION or NON_PRODUCT per line (int8): a "C" invoice cancels."""
    cancelled = {invoice: invoice.startswith("C") for invoice in set(invoices)}
    cancellation = np.fromiter(map(cancelled.__getitem__, invoices), dtype=bool, count=len(invoices))
    kinds = np.where(cancellation, CANCELLATION, PURCHASE).astype(np.int8)
    kinds[~product_mask(stock_codes)] = NON_PRODUCT
    return kinds
