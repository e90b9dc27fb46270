"""Read-only consumer tools behind ``python -m worker``: what the system knows, now.

One module per command (``changes``, ``alerts``, ``segments``, ``customer``,
``models``); :mod:`worker.tools.topic` is the shared
plumbing for topics and Redis, :mod:`worker.tools.output` for tables and JSON.
"""
