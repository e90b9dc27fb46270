"""Customer aggregates and features: the one definition both batch and stream use.

Import from the modules (``aggregates``, ``fold``, ``vector``, ``catalog``, ``clock``); this package
imports nothing itself, so a light process (a benchmark peer) can use the catalogue alone.
"""
