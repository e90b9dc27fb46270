"""Stable segment ids and names a person can use: a short label and a one-line description.

Ids: segments are numbered 0..k-1 by descending mean monetary value, so the same
fit always gives the same ids (k-means' own label order depends on the seed path).

Labels say what sets a segment apart from the others. For every feature, a
segment's *contrast* is its members' mean (after the model's signed log step,
so one wholesaler does not own a feature) minus all customers' mean, in units of
how far the segments' means spread around it (their size-weighted standard
deviation). A contrast of +2 says: this segment is two between-segment spreads
above the rest, the feature sets it apart. The same units work for every
feature, whether it is a rate, a day count or pounds.

Each feature has a word for a high and/or a low contrast (:data:`TRAITS`): a noun
for what kind of customer it is (regulars, one-timers, newcomers, returners) or
an adjective (lapsed, active, high-value, big-basket, growing, …). A trait counts
from a contrast of :data:`MIN_CONTRAST` on. The label is the segment's strongest
adjective before its strongest noun (``customers`` when no noun trait counts):

>>> contrast = np.array([[2.6, 0.1, -0.4], [0.2, 2.0, 0.3], [-1.0, -1.9, 0.2]])
>>> label_segments(contrast, ["frequency", "monetary", "recency_days"])
['regulars', 'high-value customers', 'low-value one-timers']

When labels collide, each colliding segment adds its next-strongest adjective
until they differ (a number is appended only once a segment has no trait left);
a label kept from an earlier model (``fixed``, see :mod:`worker.refresh.refit`)
never changes, the new segment gives way. Features without a word
(``mean_days_between_purchases``, ``monthly_spend_mean``, ``monthly_spend_std``)
restate others: the gap between purchases of a one-time buyer is its tenure,
monthly spend follows monetary.

The description gives the numbers behind the label: the median member's value
of the label's traits and the next strongest, in the features' own units, against
all customers' median (:func:`describe`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.features.scaling import signed_log1p
from shared.features.vector import LOG_FEATURES

MIN_CONTRAST = 0.5
"""A trait counts from half a between-segment spread away from all customers."""

DESCRIBED_TRAITS = 3
"""Features a description quotes at most."""

FALLBACK_NOUN = "customers"


@dataclass(frozen=True)
class Word:
    """What a feature's high or low contrast is called; nouns say what kind of customer it is."""

    text: str
    noun: bool = False


TRAITS: dict[tuple[str, bool], Word] = {
    ("recency_days", True): Word("lapsed"),
    ("recency_days", False): Word("active"),
    ("frequency", True): Word("regulars", noun=True),
    ("frequency", False): Word("one-timers", noun=True),
    ("monetary", True): Word("high-value"),
    ("monetary", False): Word("low-value"),
    ("avg_order_value", True): Word("big-ticket"),
    ("avg_order_value", False): Word("small-ticket"),
    ("distinct_products", True): Word("wide-range"),
    ("distinct_products", False): Word("narrow-range"),
    ("lines_per_invoice", True): Word("big-basket"),
    ("lines_per_invoice", False): Word("small-basket"),
    ("tenure_days", True): Word("long-standing"),
    ("tenure_days", False): Word("newcomers", noun=True),
    ("cancellation_rate", True): Word("returners", noun=True),
    ("monthly_spend_trend", True): Word("growing"),
    ("monthly_spend_trend", False): Word("declining"),
}
"""(feature, high contrast?) -> word. Keys are features of :data:`shared.features.vector.FEATURE_NAMES`."""


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _pounds(value: float) -> str:
    return f"£{value:,.0f}"


def _signed_pounds(value: float) -> str:
    return f"{'+' if value >= 0 else '-'}£{abs(value):,.0f}"


def _share(value: float) -> str:
    return f"{value:.0%}"


FEATURE_UNITS: dict[str, tuple[str, Callable[[float], str]]] = {
    "recency_days": ("{value} days since the last purchase", _count),
    "frequency": ("{value} invoice{s}", _count),
    "monetary": ("{value} net spend", _pounds),
    "avg_order_value": ("{value} per order", _pounds),
    "distinct_products": ("{value} product{s}", _count),
    "lines_per_invoice": ("{value} lines per order", _count),
    "mean_days_between_purchases": ("{value} days between purchases", _count),
    "tenure_days": ("{value} days since the first purchase", _count),
    "cancellation_rate": ("{value} of invoices cancelled", _share),
    "monthly_spend_mean": ("{value} a month", _pounds),
    "monthly_spend_std": ("{value} monthly spread", _pounds),
    "monthly_spend_trend": ("spend trend {value} a month", _signed_pounds),
}
"""Per feature: a phrase around its value and how the value is written (the features' own units)."""


@dataclass(frozen=True)
class NamedSegments:
    """Per fit label: its stable id; per stable id: label, description and median profile."""

    id_of_label: dict[int, int]
    names: list[str]
    descriptions: list[str]
    profiles: list[dict[str, float]]


def contrasts(means: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each segment's mean (rows) minus all customers' mean, per feature (columns), in between-segment spreads.

    >>> contrasts(np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([1, 1])).tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    weights = np.asarray(sizes, dtype=float) / float(np.sum(sizes))
    overall = weights @ means
    spread = np.sqrt(weights @ (means - overall) ** 2)
    return (means - overall) / np.where(spread > 0, spread, 1.0)


def _ranked_words(
    row: np.ndarray, feature_names: Sequence[str], minimum: float = MIN_CONTRAST
) -> list[tuple[str, Word]]:
    """The segment's traits, strongest first: (feature, word) for every worded contrast of ``minimum`` or more."""
    order = sorted(range(len(feature_names)), key=lambda column: (-abs(row[column]), column))
    ranked = []
    for column in order:
        word = TRAITS.get((feature_names[column], bool(row[column] > 0)))
        if word is not None and abs(row[column]) >= minimum:
            ranked.append((feature_names[column], word))
    return ranked


def _compose(ranked: list[tuple[str, Word]], adjectives: int) -> str:
    nouns = [word.text for _, word in ranked if word.noun]
    chosen = [word.text for _, word in ranked if not word.noun][:adjectives]
    return " ".join([*chosen, nouns[0] if nouns else FALLBACK_NOUN])


def label_segments(
    contrast: np.ndarray, feature_names: Sequence[str], fixed: Mapping[int, str] | None = None
) -> list[str]:
    """One unique label per row of ``contrast`` (segments × features); rows in ``fixed`` keep the label given."""
    fixed = dict(fixed or {})
    ranked = [_ranked_words(row, feature_names) for row in contrast]
    available = [sum(1 for _, word in words if not word.noun) for words in ranked]
    depth = [1] * len(ranked)
    while True:
        labels = [fixed.get(row, _compose(ranked[row], depth[row])) for row in range(len(ranked))]
        taken = Counter(labels)
        colliding = [row for row in range(len(ranked)) if taken[labels[row]] > 1 and row not in fixed]
        extendable = [row for row in colliding if depth[row] < available[row]]
        if not extendable:
            return _numbered(labels, fixed)
        for row in extendable:
            depth[row] += 1


def _numbered(labels: list[str], fixed: Mapping[int, str]) -> list[str]:
    """Number what still collides once no segment has a trait left: fixed rows, then the lowest row, keep the label."""
    result = list(labels)
    holders = set(fixed.values())
    for row, label in enumerate(labels):
        if row in fixed:
            continue
        if label in holders:
            n = 2
            while f"{label} {n}" in result or f"{label} {n}" in holders:
                n += 1
            result[row] = f"{label} {n}"
        holders.add(result[row])
    return result


def describe(median: Mapping[str, float], overall: Mapping[str, float], features: Sequence[str]) -> str:
    """One line with the segment's median of each feature in ``features``, all customers' median in brackets.

    >>> describe({"cancellation_rate": 0.5, "frequency": 1.0}, {"cancellation_rate": 0.0, "frequency": 2.0},
    ...          ["cancellation_rate", "frequency"])
    'median 50% of invoices cancelled (all customers 0%), 1 invoice (2)'
    """
    parts = []
    for index, feature in enumerate(features):
        phrase, write = FEATURE_UNITS[feature]
        value = float(median[feature])
        text = phrase.format(value=write(value), s="" if round(value) == 1 else "s")
        parts.append(f"{text} ({'all customers ' if index == 0 else ''}{write(float(overall[feature]))})")
    return "median " + ", ".join(parts)


def _described_features(row: np.ndarray, feature_names: Sequence[str], label: str) -> list[str]:
    """The label's features first, then the worded features farthest from all customers, DESCRIBED_TRAITS at most."""
    words = set(label.split())
    ranked = _ranked_words(row, feature_names, minimum=0.0)
    in_label = [feature for feature, word in ranked if word.text in words]
    others = [feature for feature, _ in ranked if feature not in in_label]
    return (in_label + others)[: max(DESCRIBED_TRAITS, len(in_label))]


def name_segments(features: pd.DataFrame, labels: np.ndarray, fixed: Mapping[int, str] | None = None) -> NamedSegments:
    """Order fit labels into ids, label and describe them from ``features`` (raw, one row per customer).

    ``fixed`` maps fit labels to labels decided already (kept across a refresh).
    """
    by_label = features.groupby(labels)
    order = list(by_label["monetary"].mean().sort_values(ascending=False, kind="stable").index)
    logged = features.copy()
    for column in logged.columns.intersection(list(LOG_FEATURES)):
        logged[column] = signed_log1p(logged[column].to_numpy())
    means = logged.groupby(labels).mean().loc[order].to_numpy()
    sizes = by_label.size().loc[order].to_numpy()
    contrast = contrasts(means, sizes)
    names_in_fit_order = {int(label): name for label, name in (fixed or {}).items()}
    fixed_rows = {row: names_in_fit_order[int(label)] for row, label in enumerate(order) if label in names_in_fit_order}
    names = label_segments(contrast, list(features.columns), fixed_rows)
    medians = by_label.median()
    overall = features.median()
    descriptions = []
    for row, label in enumerate(order):
        described = _described_features(contrast[row], list(features.columns), names[row])
        descriptions.append(describe(medians.loc[label], overall, described))
    return NamedSegments(
        id_of_label={int(label): index for index, label in enumerate(order)},
        names=names,
        descriptions=descriptions,
        profiles=[{key: float(value) for key, value in medians.loc[label].items()} for label in order],
    )
