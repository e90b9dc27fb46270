"""Read-only consumer tools behind ``python -m worker``: what the system knows, now.

One module per command (``changes``, ``alerts``, ``segments``, ``customer``,
``models``, ``recommend``); topics are read with :mod:`shared.topic_reader`,
:mod:`worker.tools.output` prints tables and JSON.
"""
