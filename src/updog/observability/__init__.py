"""Observability: structured JSON logging with request ids (:mod:`.logging`) and Prometheus
metrics (:mod:`.metrics`)."""
