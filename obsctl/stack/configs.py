"""The configs the local stack renders for its Prometheus and Alertmanager."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import jinja2
import yaml

from obsctl.mixin import alertmanager
from obsctl.mixin import config as mixin_config
from obsctl.stack.checkout import demo_project
from obsctl.stack.layout import HOST, PORT_OFFSETS, StackLayout
from obsctl.stack.secrets import StackSecrets, write_private

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _render(template: str, dest: Path, **context: object) -> None:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(env.get_template(template).render(**context))


def _ports(layout: StackLayout) -> dict[str, int]:
    return {name: layout.port(name) for name in PORT_OFFSETS}


def render_prometheus_config(
    layout: StackLayout, drill_relabels: list[dict[str, Any]] | None = None
) -> Path:
    """Write prometheus.yml for this stack (marking a running drill's own alerts, if given)."""
    dest = layout.state("prometheus") / "prometheus.yml"
    config = mixin_config.load(demo_project().config_file)
    _render(
        "prometheus.yml.j2",
        dest,
        host=HOST,
        ports=_ports(layout),
        # Each job by the name the demo project's rules select it by (its selectors).
        jobs={job: config.job_name(job) for job in get_args(mixin_config.ScrapeJob)},
        rules_glob=str(demo_project().alert_rules / "*.rules.yml"),
        drill_relabels=yaml.safe_dump(drill_relabels or [], sort_keys=False)
        if drill_relabels
        else None,
    )
    return dest


def render_alertmanager_config(layout: StackLayout, secrets: StackSecrets) -> Path:
    """Write this stack's alertmanager.yml: the project's routing, at the stack's addresses.

    Only the relay, the deadman and the SMTP sink move to the stack's servers; receivers,
    grouping and the Watchdog's repeat interval stay the project's.
    """
    state = layout.state("alertmanager")
    token_file = state / "relay-token"
    write_private(token_file, secrets.relay_token)
    deadman_token_file = state / "deadman-token"
    write_private(deadman_token_file, secrets.deadman_token)
    config = mixin_config.load(demo_project().config_file)
    smtp = mixin_config.Email.model_validate(
        {"smarthost": f"{HOST}:{layout.port('smtp')}", "from": "obsctl-alertmanager@localhost",
         "require_tls": False}
    )  # fmt: skip
    routing = config.routing.model_copy(
        update={
            "relay": mixin_config.Endpoint(url=layout.url("relay"), token_file=str(token_file)),
            "deadman": mixin_config.Endpoint(
                url=layout.url("deadman"), token_file=str(deadman_token_file)
            ),
            "email": smtp,
        }
    )
    dest = state / "alertmanager.yml"
    templates = str(demo_project().templates / "*.tmpl")
    dest.write_text(alertmanager.render(config.model_copy(update={"routing": routing}), templates))
    return dest
