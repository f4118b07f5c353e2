"""Re-render the stack's Prometheus and Alertmanager configs and ask both to reload them."""

from __future__ import annotations

import httpx

from obsctl.stack.layout import StackLayout
from obsctl.stack.services import (
    load_secrets,
    render_alertmanager_config,
    render_prometheus_config,
)


def reload_all(layout: StackLayout) -> dict[str, str | None]:
    """Reload both servers; map each name to None on success or the server's refusal."""
    render_prometheus_config(layout)
    render_alertmanager_config(layout, load_secrets(layout))
    return {
        "prometheus": _post_reload(layout.url("prometheus")),
        "alertmanager": _post_reload(layout.url("alertmanager")),
    }


def _post_reload(base_url: str) -> str | None:
    try:
        response = httpx.post(f"{base_url}/-/reload", timeout=10)
    except httpx.HTTPError as exc:
        return f"{base_url} unreachable: {exc}"
    if response.status_code != 200:
        # A refused config leaves the server running with its previous one.
        return response.text.strip()[:500] or f"HTTP {response.status_code}"
    return None
