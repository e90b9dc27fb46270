"""The read-only HTTP API and the live dashboard (``python -m worker api``).

:mod:`~worker.api.app` composes the endpoints, :mod:`~worker.api.changes` reads the
segment-changes topic, :mod:`~worker.api.stream` serves it as server-sent events,
:mod:`~worker.api.progress` derives lag and rows/s, :mod:`~worker.api.errors` shapes
errors, :mod:`~worker.api.settings` holds ``SEG_API_*`` and :mod:`~worker.api.server`
runs it under uvicorn. ``dashboard.html`` is the page served at ``/``.
"""
