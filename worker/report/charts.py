"""The report's charts as inline SVG strings, drawn with matplotlib (no pyplot, no global state).

Why SVG: the page stays one self-contained file that any browser renders
without a network, and text in it stays text (``svg.fonttype = none``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.typing import RcKeyType

from worker.report.content import Incident, ReportData, SegmentProfile
from worker.segmentation.profile import PROFILE_COLUMNS

SVG_STYLE: dict[RcKeyType, Any] = {"svg.fonttype": "none", "svg.hashsalt": "live-segments", "font.size": 9}
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
SEVERITY_COLOURS = {"info": "#4c78a8", "warning": "#f58518", "critical": "#e45756"}
MIN_INCIDENT_WIDTH = timedelta(days=1)


def to_svg(figure: Figure) -> str:
    """The figure as an ``<svg>`` element to inline in HTML: no XML prologue, no metadata (same data, same bytes)."""
    buffer = io.StringIO()
    with matplotlib.rc_context(SVG_STYLE):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata=NO_METADATA)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def heatmap(
    ax: Axes, shades: np.ndarray, labels: Sequence[Sequence[str]], rows: Sequence[str], columns: Sequence[str]
) -> None:
    """Cells shaded by ``shades`` (0…1) and written with ``labels``; dark cells get white text."""
    ax.pcolormesh(shades, cmap="Blues", vmin=0.0, vmax=1.0, edgecolors="white", linewidth=1)
    for (row, column), shade in np.ndenumerate(shades):
        colour = "white" if shade > 0.6 else "black"
        ax.text(column + 0.5, row + 0.5, labels[row][column], ha="center", va="center", color=colour)
    ax.set_xticks(np.arange(len(columns)) + 0.5, columns)
    ax.set_yticks(np.arange(len(rows)) + 0.5, rows)
    ax.invert_yaxis()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def profiles_chart(segments: list[SegmentProfile]) -> str:
    """Median profile per segment; each column shaded from its lowest to its highest segment."""
    names = [name for name, _ in PROFILE_COLUMNS]
    values = np.array([[segment.profile.get(name, np.nan) for name in names] for segment in segments])
    low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    shades = np.nan_to_num((values - low) / np.where(high > low, high - low, 1.0))
    labels = [[_compact(value) for value in row] for row in values]
    figure = Figure(figsize=(1.3 * len(names) + 2.5, 0.4 * len(segments) + 1.0))
    heatmap(
        figure.subplots(),
        shades,
        labels,
        [f"{s.id} {s.name} ({s.size:,})" for s in segments],
        [label for _, label in PROFILE_COLUMNS],
    )
    return to_svg(figure)


def _compact(value: float) -> str:
    if np.isnan(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def sizes_chart(data: ReportData) -> str:
    """Published members per segment over event time, stacked."""
    figure = Figure(figsize=(10, 4))
    ax = figure.subplots()
    ids = list(data.sizes.sizes)
    ax.stackplot(date2num(data.sizes.times), [data.sizes.sizes[s] for s in ids], labels=[data.name(s) for s in ids])
    ax.set_ylabel("customers (published segment)")
    _dates(ax)
    ax.margins(x=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return to_svg(figure)


def _dates(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def transitions_chart(data: ReportData) -> str:
    """Counts of changes from each previous segment (rows, ``new`` first) to each current one."""
    sources, targets = data.transitions.sources, data.transitions.targets
    counts = np.array([[data.transitions.counts.get((s, t), 0) for t in targets] for s in sources])
    shades = np.sqrt(counts / max(int(counts.max()), 1))
    labels = [[f"{count:,}" if count else "" for count in row] for row in counts]
    figure = Figure(figsize=(1.1 * len(targets) + 2.5, 0.45 * len(sources) + 1.5))
    ax = figure.subplots()
    heatmap(ax, shades, labels, [data.name(s) for s in sources], [data.name(t) for t in targets])
    ax.set_xlabel("to (current segment)")
    ax.set_ylabel("from (previous segment)")
    ax.tick_params(axis="x", labelrotation=30)
    return to_svg(figure)


def incidents_chart(incidents: list[Incident]) -> str:
    """One row per monitor; a bar per incident from its opening to its closing (hatched while open)."""
    monitors = sorted({incident.monitor for incident in incidents})
    figure = Figure(figsize=(10, 0.5 * len(monitors) + 1.2))
    ax = figure.subplots()
    for incident in incidents:
        width = max(incident.end - incident.opened, MIN_INCIDENT_WIDTH)
        ax.barh(
            monitors.index(incident.monitor),
            width / timedelta(days=1),
            left=date2num(incident.opened),
            height=0.6,
            color=SEVERITY_COLOURS[incident.severity],
            hatch="//" if incident.closed is None else None,
            edgecolor="black",
            linewidth=0.5,
        )
    ax.set_yticks(range(len(monitors)), monitors)
    ax.invert_yaxis()
    _dates(ax)
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colour, label=severity) for severity, colour in SEVERITY_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return to_svg(figure)


def products_chart(data: ReportData, columns: int = 4) -> str:
    """Net units of each segment's top stock codes, one small panel per segment."""
    segments = sorted(data.products)
    rows = -(-len(segments) // columns)
    figure = Figure(figsize=(3 * columns, 2.6 * rows))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, segment in zip(axes, segments, strict=False):
        codes, units = zip(*data.products[segment], strict=True)
        ax.barh(range(len(codes)), units, color="#4c78a8")
        ax.set_yticks(range(len(codes)), codes)
        ax.invert_yaxis()
        ax.set_title(data.name(segment), fontsize=9)
        ax.tick_params(axis="both", labelsize=7)
    for ax in axes[len(segments) :]:
        ax.set_visible(False)
    figure.tight_layout()
    return to_svg(figure)
