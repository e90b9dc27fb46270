"""The segmentation worker: bootstraps state from history, then (``run``) consumes the invoice stream."""
