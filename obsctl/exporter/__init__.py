"""The sidecar exporter: probes on a schedule, serves /metrics and /health from their results."""
