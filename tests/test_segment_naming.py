"""Segment names: pure functions, no services. Labels say what sets a segment apart, unique within a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.contracts.model_snapshot import Segment
from shared.features.vector import FEATURE_NAMES
from worker.segmentation.naming import contrasts, describe, label_segments, name_segments

TYPICAL = {
    "recency_days": 50.0,
    "frequency": 2.0,
    "monetary": 450.0,
    "avg_order_value": 290.0,
    "distinct_products": 26.0,
    "lines_per_invoice": 16.0,
    "mean_days_between_purchases": 54.0,
    "tenure_days": 118.0,
    "cancellation_rate": 0.0,
    "monthly_spend_mean": 100.0,
    "monthly_spend_std": 140.0,
    "monthly_spend_trend": -60.0,
}


def customers(n: int, seed: int, **changes: float) -> pd.DataFrame:
    """``n`` customers around the typical one, with ``changes`` to the medians; ±10% noise."""
    rng = np.random.default_rng(seed)
    centre = TYPICAL | changes
    rows = {name: centre[name] * rng.uniform(0.9, 1.1, n) for name in FEATURE_NAMES}
    return pd.DataFrame(rows)


def population() -> tuple[pd.DataFrame, np.ndarray]:
    """Four groups as in the real data: big regulars, cancellers, lapsed one-timers, typical customers."""
    groups = [
        customers(40, 1, frequency=9, monetary=3700, distinct_products=99, recency_days=14),
        customers(60, 2, cancellation_rate=0.5, recency_days=68, frequency=1),
        customers(80, 3, recency_days=110, frequency=1, monetary=110, lines_per_invoice=4, tenure_days=125),
        customers(100, 4),
    ]
    labels = np.concatenate([np.full(len(group), label) for label, group in enumerate(groups)])
    return pd.concat(groups, ignore_index=True), labels


def test_each_segment_is_named_by_what_sets_it_apart_with_its_numbers() -> None:
    features, labels = population()
    named = name_segments(features, labels)
    by_fit_label = {label: named.id_of_label[label] for label in range(4)}
    regulars, cancellers, lapsed, typical = (by_fit_label[label] for label in range(4))
    assert named.names[regulars] == "wide-range regulars"
    assert named.descriptions[regulars] == (
        "median 98 products (all customers 26), 9 invoices (1), £3,632 net spend (£445)"
    )
    assert named.names[cancellers].endswith("returners")
    assert named.descriptions[cancellers].startswith("median 51% of invoices cancelled (all customers 0%)")
    assert named.names[lapsed] == "small-basket one-timers"
    assert "invoices" not in named.names[typical]
    assert len(set(named.names)) == 4
    assert named.id_of_label[0] == 0, "ids by mean monetary value: the big spenders are segment 0"
    assert named.profiles[regulars]["frequency"] == pytest.approx(features[labels == 0]["frequency"].median())


def test_naming_is_deterministic_and_independent_of_row_order() -> None:
    features, labels = population()
    order = np.random.default_rng(5).permutation(len(features))
    again = name_segments(features.iloc[order].reset_index(drop=True), labels[order])
    assert again == name_segments(features, labels)


def test_colliding_labels_add_the_next_strongest_trait_until_they_differ() -> None:
    names = ["frequency", "monetary", "recency_days", "tenure_days"]
    contrast = np.array(
        [
            [2.0, 1.5, 0.0, 0.9],  # regulars: high-value, then long-standing
            [2.0, 1.5, 0.0, 0.0],  # regulars: high-value, nothing else
            [2.0, 1.5, -0.8, 0.0],  # regulars: high-value, then active
            [-1.0, -1.5, 1.2, 0.0],
        ]
    )
    labels = label_segments(contrast, names)
    assert labels == [
        "high-value long-standing regulars",
        "high-value regulars",
        "high-value active regulars",
        "low-value one-timers",
    ]


def test_a_segment_without_any_trait_left_is_numbered_and_weak_contrasts_name_nothing() -> None:
    contrast = np.array([[0.2, -0.1], [0.2, -0.1], [0.3, 0.4]])
    assert label_segments(contrast, ["frequency", "monetary"]) == ["customers", "customers 2", "customers 3"]


def test_labels_kept_from_an_earlier_model_stay_and_new_segments_give_way() -> None:
    names = ["frequency", "monetary", "recency_days"]
    contrast = np.array([[2.0, 1.5, 0.0], [2.0, 1.5, 0.7], [-1.0, -1.5, 1.2]])
    assert label_segments(contrast, names, fixed={0: "high-value lapsed regulars"})[0] == "high-value lapsed regulars"
    labels = label_segments(contrast, names, fixed={1: "high-value regulars"})
    assert labels[1] == "high-value regulars" and labels[0] == "high-value regulars 2"
    features, fit_labels = population()
    named = name_segments(features, fit_labels, fixed={2: "dormant"})
    assert named.names[named.id_of_label[2]] == "dormant" and len(set(named.names)) == 4


def test_contrasts_are_in_between_segment_spreads_so_scale_does_not_matter() -> None:
    means = np.array([[1.0, 10.0], [3.0, 10.0], [2.0, 40.0]])
    sizes = np.array([10, 10, 20])
    contrast = contrasts(means, sizes)
    assert np.allclose(contrast, contrasts(means * 1000 + 7, sizes))
    weights = sizes / sizes.sum()
    assert np.allclose(weights @ contrast, 0.0) and np.allclose(np.sqrt(weights @ contrast**2), 1.0)


def test_descriptions_write_each_feature_in_its_own_units() -> None:
    median = TYPICAL | {"monetary": 3746.9, "monthly_spend_trend": 15.8, "frequency": 1.0, "recency_days": 13.6}
    text = describe(median, TYPICAL, ["monetary", "monthly_spend_trend", "frequency", "recency_days"])
    assert text == (
        "median £3,747 net spend (all customers £450), spend trend +£16 a month (-£60), 1 invoice (2), "
        "14 days since the last purchase (50)"
    )


def test_snapshots_written_before_descriptions_still_parse() -> None:
    old = {"id": 3, "name": "loyal 2", "centroid": [0.0], "sum": [0.0], "count": 1}
    assert Segment.model_validate(old).description == ""
