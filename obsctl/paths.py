"""Where the checkout's shared files are: configs, generated rules and templates obsctl reads.

The names are relative to a checkout (`obsctl validate --repo` checks any checkout); prefix
them with REPO_ROOT for this one's, as the local stack and the CLI defaults do.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

EXPORTER_CONFIG = "exporters/obsctl-exporter.yml"
RELAY_CONFIG = "alertmanager/relay.yaml"
MIXIN_CONFIG = "obsctl/mixin/mixin.yaml"
ALERT_RULES_DIR = "alert-rules"
RULES_GLOB = f"{ALERT_RULES_DIR}/*.rules.yml"
RULE_TESTS_GLOB = f"{ALERT_RULES_DIR}/tests/*.test.yml"
ALERTMANAGER_TEMPLATES_GLOB = "alertmanager/templates/*.tmpl"
