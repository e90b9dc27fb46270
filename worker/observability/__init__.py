"""What an operator sees of a running worker: Prometheus metrics, health endpoints, structured logs."""
