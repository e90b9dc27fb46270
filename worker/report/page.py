"""The report page: one HTML file with the charts inline, readable offline and in any browser.

Each section either shows its chart or says plainly why there is none (no changes
published yet, no drift incidents, no product counts), so an empty section is
never mistaken for a broken one.
"""

from __future__ import annotations

import html
from pathlib import Path

from shared.atomic_file import write_text_atomically
from worker.report import charts
from worker.report.content import ReportData

STYLE = """
body { font-family: "DejaVu Sans", "Liberation Sans", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #555; }
.chart svg { max-width: 100%; height: auto; }
.empty { background: #f4f4f4; border-left: 4px solid #999; padding: 0.6em 1em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; }
"""


def render(data: ReportData) -> str:
    """The whole page as one string."""
    sections = [
        _section(
            "Segment profiles",
            _profiles(data),
            "Median member features at training time; each column "
            "is shaded from its lowest to its highest segment. Sizes are live member counts.",
        ),
        _section(
            "Segment sizes over event time",
            _sizes(data),
            "Customers per published segment, replayed from the segment-change topic week by week.",
        ),
        _section(
            "Segment transitions",
            _transitions(data),
            "Published changes from the previous segment "
            "(rows; new = first segment of a customer) to the current one (columns).",
        ),
        _section(
            "Drift incidents",
            _incidents(data),
            "One bar per incident from opening to closing, by monitor; hatched while still open.",
        ),
        _section(
            "Top products per segment",
            _products(data),
            "Net units bought by each segment's current members (returns subtract), by stock code.",
        ),
    ]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>live-segments report — model v{data.model_version}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>live-segments report</h1>
<p class="meta">Model v{data.model_version} ({len(data.segments)} segments, trained on events until
{data.trained_until:%Y-%m-%d %H:%M}) · {data.changes:,} distinct segment changes ·
{len(data.incidents)} drift incidents · generated {data.generated_at:%Y-%m-%d %H:%M} UTC</p>
{"".join(sections)}
</body>
</html>
"""


def write(data: ReportData, path: Path) -> Path:
    """Write the page atomically (a reader never sees half a report); returns the path."""
    return write_text_atomically(path, render(data))


def _section(title: str, body: str, caption: str) -> str:
    return f'\n<section>\n<h2>{html.escape(title)}</h2>\n<p class="meta">{html.escape(caption)}</p>\n{body}\n</section>'


def _chart(svg: str) -> str:
    return f'<div class="chart">{svg}</div>'


def _empty(text: str) -> str:
    return f'<p class="empty">{html.escape(text)}</p>'


def _profiles(data: ReportData) -> str:
    rows = "".join(
        f'<tr><td class="num">{s.id}</td><td>{html.escape(s.name)}</td><td class="num">{s.size:,}</td>'
        f"<td>{html.escape(s.description)}</td></tr>"
        for s in data.segments
    )
    names = f"<table><tr><th>id</th><th>name</th><th>size</th><th>what sets it apart</th></tr>{rows}</table>"
    return _chart(charts.profiles_chart(data.segments)) + names


def _sizes(data: ReportData) -> str:
    if not data.sizes.times:
        return _empty("No segment changes published yet: sizes over time start with the first change.")
    return _chart(charts.sizes_chart(data))


def _transitions(data: ReportData) -> str:
    if not data.transitions.counts:
        return _empty("No segment changes published yet: no transitions to count.")
    return _chart(charts.transitions_chart(data))


def _incidents(data: ReportData) -> str:
    if not data.incidents:
        return _empty("No drift incidents: nothing was published on the drift-alerts topic.")
    rows = "".join(
        f"<tr><td>{html.escape(i.monitor)}</td><td>{html.escape(i.statistic)}</td><td>{i.severity}</td>"
        f"<td>{i.opened:%Y-%m-%d}</td><td>{f'{i.closed:%Y-%m-%d}' if i.closed else 'open'}</td>"
        f'<td class="num">{i.alerts}</td><td>{html.escape(i.suggested_action)}</td></tr>'
        for i in data.incidents
    )
    table = (
        "<table><tr><th>monitor</th><th>statistic</th><th>severity</th><th>opened</th><th>closed</th>"
        f"<th>alerts</th><th>suggested action</th></tr>{rows}</table>"
    )
    return _chart(charts.incidents_chart(data.incidents)) + table


def _products(data: ReportData) -> str:
    if not data.products:
        return _empty("No product counts in Redis yet (segment:{id}:products is empty for every segment).")
    return _chart(charts.products_chart(data))
