"""The streaming worker: consume invoices, keep exact state in Redis, publish segment changes."""
