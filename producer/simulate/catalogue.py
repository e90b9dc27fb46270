"""A product catalogue of a few hundred stock codes with descriptions and prices.

Codes look like Online Retail's (``85123A``, ``22423``), descriptions are upper
case like the shop's, and prices depend on the category, so an archetype's
product affinity also sets its price level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS = ("WHITE", "RED", "PINK", "BLUE", "GREEN", "IVORY", "VINTAGE", "RETRO", "SPOTTY", "REGENCY", "HEART", "STAR")
NOUNS: dict[str, tuple[tuple[str, float], ...]] = {
    "decor": (("HANGING HEART T-LIGHT HOLDER", 2.55), ("WOODEN PICTURE FRAME", 3.75), ("WALL MIRROR", 9.95)),
    "kitchen": (("CAKESTAND 3 TIER", 12.75), ("TEA TOWEL", 1.25), ("MUG", 1.65), ("CAKE TINS", 4.95)),
    "christmas": (("CHRISTMAS BAUBLE", 0.85), ("PAPER CHAIN KIT", 2.95), ("ADVENT CALENDAR", 4.25)),
    "party": (("PARTY BUNTING", 4.95), ("PAPER PLATES", 0.85), ("NAPKINS", 0.42)),
    "bags": (("JUMBO BAG", 1.95), ("LUNCH BAG", 1.65), ("SHOPPER BAG", 2.1)),
    "stationery": (("NOTEBOOK", 0.65), ("PENCILS SET", 0.42), ("WRAPPING PAPER", 0.42)),
    "lighting": (("METAL LANTERN", 3.75), ("CHANDELIER", 14.95), ("NIGHT LIGHT", 2.1)),
    "garden": (("WATERING CAN", 4.95), ("BIRD FEEDER", 3.25), ("PLANT POT", 1.65)),
}
CATEGORIES: tuple[str, ...] = tuple(NOUNS)


@dataclass(frozen=True)
class Catalogue:
    """Parallel arrays, one entry per product."""

    codes: np.ndarray
    descriptions: np.ndarray
    prices: np.ndarray
    categories: np.ndarray  # index into CATEGORIES

    def __len__(self) -> int:
        return len(self.codes)


def build_catalogue(rng: np.random.Generator, size: int = 300) -> Catalogue:
    """``size`` distinct products: colour x item per category, price near the item's list price."""
    items = [
        (c, colour, noun, price)
        for c, nouns in enumerate(NOUNS.values())
        for noun, price in nouns
        for colour in COLOURS
    ]
    chosen = sorted(rng.choice(len(items), size=min(size, len(items)), replace=False))
    numbers = rng.choice(np.arange(20000, 90000), size=len(chosen), replace=False)
    suffixes = rng.choice(list(" ABCDEFG"), size=len(chosen), p=[0.72] + [0.04] * 7)
    codes, descriptions, prices, categories = [], [], [], []
    for index, number, suffix in zip(chosen, numbers, suffixes, strict=True):
        category, colour, noun, price = items[index]
        codes.append(f"{number}{suffix.strip()}")
        descriptions.append(f"{colour} {noun}")
        prices.append(max(0.19, round(price * rng.lognormal(0.0, 0.25) * 20) / 20))
        categories.append(category)
    return Catalogue(np.array(codes), np.array(descriptions), np.array(prices), np.array(categories))
