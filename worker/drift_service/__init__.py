"""The drift monitor service: every worker's observations in, drift incidents out.

Run as ``python -m worker monitor`` (one active instance: its input topic has one
partition, so a second instance in the same group stands by).
"""
