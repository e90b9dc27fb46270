"""Common package of the streaming segmentation system: contracts, settings, clients.

Everything the producer and the worker must agree on lives here, so that the two
sides can never disagree about a message's shape or a feature's definition.
"""
