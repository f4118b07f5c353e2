"""One config drives the alert rules, their promtool tests, Alertmanager and the dashboards."""
