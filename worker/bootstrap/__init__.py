"""Batch bootstrap: history file -> cleaned rows -> aggregates -> fitted model -> Redis state.

Why a batch path at all: replaying a year through the stream would take long and
would not give the initial model. The batch path computes exactly what folding
:func:`shared.features.apply_line` over the same rows would, vectorised.
"""
