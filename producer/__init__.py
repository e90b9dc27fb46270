"""The replay producer: publishes invoice lines from a file to Kafka in event-time order.

Library use: :func:`producer.replay.replay` with :class:`producer.replay.ReplayOptions`;
command line: ``python -m producer replay FILE --help``.
"""
