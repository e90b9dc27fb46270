"""Stable segment ids and human-readable names.

Ids: segments are numbered 0..k-1 by descending mean monetary value, so the same
fit always gives the same ids (k-means' own label order depends on the seed path).

Names come from the segment's profile (median raw features of its members),
compared with the medians over all customers:

* *recent*: median recency <= overall median recency
* *frequent*: median frequency > overall median frequency
* *young*: median tenure <= half the overall median tenure

and the first matching rule wins:

=================  ==================================================================
name               rule
=================  ==================================================================
champions          recent, frequency and monetary both >= 3 x their overall medians
loyal              recent and frequent
new                recent and young
big spenders       recent and monetary >= 2 x overall median monetary
at risk            not recent, and frequent or monetary >= overall median monetary
hibernating        median recency >= 2 x overall median recency
occasional         everything else
=================  ==================================================================

A name used twice gets a numeric suffix (``loyal 2``) in id order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class NamedSegments:
    """Per fit label: its stable id; per stable id: name and profile."""

    id_of_label: dict[int, int]
    names: list[str]
    profiles: list[dict[str, float]]


def _name(profile: pd.Series, overall: pd.Series) -> str:
    recent = profile["recency_days"] <= overall["recency_days"]
    frequent = profile["frequency"] > overall["frequency"]
    young = profile["tenure_days"] <= overall["tenure_days"] / 2
    spend = profile["monetary"] / overall["monetary"] if overall["monetary"] > 0 else float("inf")
    if recent and spend >= 3 and profile["frequency"] >= 3 * overall["frequency"]:
        return "champions"
    if recent and frequent:
        return "loyal"
    if recent and young:
        return "new"
    if recent and spend >= 2:
        return "big spenders"
    if frequent or spend >= 1:
        return "at risk"
    if profile["recency_days"] >= 2 * overall["recency_days"]:
        return "hibernating"
    return "occasional"


def name_segments(features: pd.DataFrame, labels: np.ndarray) -> NamedSegments:
    """Order fit labels into ids and name them from ``features`` (raw, one row per customer)."""
    by_label = features.groupby(labels)
    order = by_label["monetary"].mean().sort_values(ascending=False, kind="stable").index
    medians = by_label.median()
    overall = features.median()
    names: list[str] = []
    for label in order:
        name = _name(medians.loc[label], overall)
        used = sum(1 for existing in names if existing == name or existing.startswith(f"{name} "))
        names.append(f"{name} {used + 1}" if used else name)
    return NamedSegments(
        id_of_label={int(label): index for index, label in enumerate(order)},
        names=names,
        profiles=[{key: float(value) for key, value in medians.loc[label].items()} for label in order],
    )
