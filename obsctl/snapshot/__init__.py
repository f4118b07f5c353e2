"""Dashboards as pictures: the generated dashboards drawn from a real Prometheus."""
