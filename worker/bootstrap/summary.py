"""Human-readable tables of a bootstrap run (also copied into the README)."""

from __future__ import annotations

import pandas as pd

from shared.features.vector import LOG_FEATURES
from worker.bootstrap.model_fit import format_k_selection
from worker.bootstrap.pipeline import BootstrapResult

PROFILE_COLUMNS = ("recency_days", "frequency", "monetary", "avg_order_value", "distinct_products", "tenure_days")


def features_table(features: pd.DataFrame) -> str:
    """Per feature: transform, median and IQR over the training customers."""
    lines = [f"{'feature':<28}  {'transform':<16}  {'median':>10}  {'p25':>10}  {'p75':>10}"]
    for name in features.columns:
        q25, median, q75 = features[name].quantile([0.25, 0.5, 0.75])
        transform = "log1p + robust" if name in LOG_FEATURES else "robust"
        lines.append(f"{name:<28}  {transform:<16}  {median:>10.2f}  {q25:>10.2f}  {q75:>10.2f}")
    return "\n".join(lines)


def profiles_table(result: BootstrapResult) -> str:
    """Per segment: id, name, size and median raw features of its members; then each segment's description."""
    width = max([4] + [len(segment.name) for segment in result.snapshot.segments])
    header = f"{'id':>2}  {'name':<{width}}  {'size':>5}  {'share':>6}  " + "  ".join(
        f"{column.replace('_days', '')[:10]:>10}" for column in PROFILE_COLUMNS
    )
    lines = [header]
    total = sum(segment.count for segment in result.snapshot.segments)
    for segment in result.snapshot.segments:
        values = "  ".join(f"{segment.profile[column]:>10.1f}" for column in PROFILE_COLUMNS)
        lines.append(
            f"{segment.id:>2}  {segment.name:<{width}}  {segment.count:>5}  {segment.count / total:>6.1%}  {values}"
        )
    lines.append("")
    lines.extend(f"{segment.id:>2}  {segment.name}: {segment.description}" for segment in result.snapshot.segments)
    return "\n".join(lines)


def summary(result: BootstrapResult) -> str:
    """Everything a user checks after a run."""
    snapshot = result.snapshot
    quality = snapshot.quality
    k_selection = {int(k): scores for k, scores in snapshot.k_selection.items()}
    seed = result.seed
    state = (
        f"{seed.customers_written:,} customer records ({seed.scored:,} scored), {seed.stale_removed:,} stale removed"
        if seed
        else "unchanged"
    )
    timings = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items())
    return "\n\n".join(
        [
            f"bootstrap {result.outcome}: model v{snapshot.version}, k={snapshot.k}, "
            f"window {snapshot.training_window[0]} .. {snapshot.training_window[1]}",
            "cleaning\n" + str(result.cleaning),
            "k selection\n" + format_k_selection(k_selection, snapshot.k),
            f"quality: silhouette {quality['silhouette']:.4f}, Calinski-Harabasz {quality['calinski_harabasz']:.1f}, "
            f"Davies-Bouldin {quality['davies_bouldin']:.4f}, inertia {quality['inertia']:.1f}",
            "features\n" + features_table(result.features),
            "segments\n" + profiles_table(result),
            f"state: {state}\ndata fingerprint: {snapshot.data_fingerprint}\ntimings: {timings}",
        ]
    )
