"""The demo report behind ``python -m worker report``: one self-contained HTML file.

:mod:`~worker.report.content` holds what the report shows (plain dataclasses),
:mod:`~worker.queries.history` derives it from the published events,
:mod:`~worker.report.gather` reads the topics and Redis, :mod:`~worker.report.charts`
draws inline SVG and :mod:`~worker.report.page` writes the HTML.
"""
