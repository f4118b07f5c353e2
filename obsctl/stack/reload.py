"""Re-render the stack's Prometheus and Alertmanager configs and ask both to reload them."""

from __future__ import annotations

from obsctl.reload import ReloadError, reload
from obsctl.stack.configs import render_alertmanager_config, render_prometheus_config
from obsctl.stack.layout import StackLayout
from obsctl.stack.services import load_secrets


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
        reload(f"{base_url}/-/reload")
    except ReloadError as exc:
        return f"{base_url} {exc}" if not exc.answered else str(exc)[:500]
    return None
