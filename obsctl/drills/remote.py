"""A drill target that is not the local stack, described by an explicit target config.

obsctl owns none of a remote system's processes, so the config names everything: where
Prometheus, Alertmanager, the exporter and the relay answer, how each scenario's fault is
injected and undone (``obsctl.drills.actions``), how alerts get the ``drill`` label, and the
mailbox the alert emails land in. Delivery to DingTalk is proven by the relay's record of what
DingTalk accepted (``GET /api/v1/deliveries``), since DingTalk offers no way to read a group; for
the dead man's switch, which posts to DingTalk itself, by the switch's own record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import httpx
from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from obsctl.configfile import StrictModel, load_model
from obsctl.drills.actions import Action, perform_all
from obsctl.drills.deadman import DeadmanClient, DeadmanObserver
from obsctl.drills.mailbox import ImapMailbox
from obsctl.drills.prometheus_label import format_alerts
from obsctl.drills.scenarios import SCENARIOS, Expectation, Scenario
from obsctl.drills.target import DrillError, Message, ObservedSystem, Step


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        raise ValueError(f"expected an http(s) URL such as http://prometheus:9090, found {value!r}")
    return value


Url = Annotated[str, AfterValidator(_http_url)]
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]


class FaultSteps(StrictModel):
    """How to inject one fault and how to undo it (every restore action is tried)."""

    inject: list[Action] = Field(min_length=1)
    restore: list[Action] = Field(min_length=1)


class FaultConfig(FaultSteps):
    """A scenario on this target; `labels` pick its alert (e.g. this system's queue name)."""

    labels: dict[str, str] = Field(default_factory=dict)
    variants: dict[str, FaultSteps] = Field(default_factory=dict)


class RelayEndpoint(StrictModel):
    """The obsctl relay in front of the target's DingTalk robots."""

    url: Url
    token: SecretStr | None = None


class DeadmanEndpoint(StrictModel):
    """The target's dead man's switch (obsctl deadman), for the drills that stop the alert path."""

    url: Url
    token: SecretStr | None = None


class Mailbox(StrictModel):
    """Where the target's alert emails can be read back."""

    imap: ImapMailbox


class DrillLabel(StrictModel):
    """How every alert of the target gets (and loses) the label drill=<id>."""

    set: list[Action] = Field(min_length=1)
    clear: list[Action] = Field(min_length=1)


class TargetConfig(StrictModel):
    """A whole drill target config file."""

    name: TargetName
    prometheus: Url
    alertmanager: Url
    exporter: Url
    relay: RelayEndpoint
    # Needed by the scenarios that stop the alert path (alert-path-down).
    deadman: DeadmanEndpoint | None = None
    mailbox: Mailbox
    drill_label: DrillLabel
    faults: dict[str, FaultConfig] = Field(min_length=1)
    # Notes what a running drill must undo; the next run after a crash reads it.
    state_file: Path | None = None

    @field_validator("faults")
    @classmethod
    def _known_scenarios(cls, faults: dict[str, FaultConfig]) -> dict[str, FaultConfig]:
        unknown = sorted(set(faults) - set(SCENARIOS))
        if unknown:
            raise ValueError(
                f"unknown scenario {', '.join(unknown)}; scenarios: {', '.join(SCENARIOS)}"
            )
        for name, fault in faults.items():
            extra = sorted(set(fault.variants) - set(SCENARIOS[name].variants))
            if extra:
                known = ", ".join(SCENARIOS[name].variants) or "none"
                raise ValueError(f"{name}: unknown variant {', '.join(extra)} (variants: {known})")
        return faults

    @model_validator(mode="after")
    def _deadman_for_its_scenarios(self) -> TargetConfig:
        needing = [name for name in self.faults if SCENARIOS[name].deadman]
        if needing and self.deadman is None:
            raise ValueError(
                f"{', '.join(needing)} stops the alert path: only the dead man's switch can tell, "
                "so name it (deadman: {url, token})"
            )
        return self


def load_target(path: Path, environ: Mapping[str, str] | None = None) -> TargetConfig:
    """Read and validate a target config (ConfigError lists every problem with its key path)."""
    config = load_model(path, TargetConfig, os.environ if environ is None else environ, _no_env)
    if config.state_file is None:
        state_home = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        config.state_file = state_home / "obsctl" / "drills" / f"{config.name}.active.json"
    elif not config.state_file.is_absolute():
        config.state_file = path.resolve().parent / config.state_file
    return config


def _no_env(raw: dict[str, object], environ: Mapping[str, str]) -> None:
    """Target configs take no overrides from the environment beyond ${VAR} references."""


class RemoteTarget(ObservedSystem, DeadmanObserver):
    """A system named by a target config, observed over HTTP and faulted by its actions."""

    def __init__(self, config: TargetConfig) -> None:
        self.config = config
        self.prometheus_url = config.prometheus.rstrip("/")
        self.alertmanager_url = config.alertmanager.rstrip("/")
        self.exporter_url = config.exporter.rstrip("/")
        self.relay_url = config.relay.url.rstrip("/")
        if config.deadman is not None:
            token = config.deadman.token
            self.deadman_client = DeadmanClient(
                config.deadman.url.rstrip("/"), token.get_secret_value() if token else None
            )

    @property
    def description(self) -> str:
        """Which system this is, for the journal and the progress lines."""
        return f"target {self.config.name} (prometheus {self.prometheus_url})"

    @property
    def state_file(self) -> Path:
        """Where a running drill notes what to undo should it be killed."""
        assert self.config.state_file is not None  # load_target fills it in
        return self.config.state_file

    def fault_config(self, scenario: Scenario, variant: str | None) -> FaultSteps:
        """The configured steps of a scenario (and variant); DrillError when there are none."""
        fault = self.config.faults.get(scenario.name)
        if fault is None:
            configured = ", ".join(self.config.faults)
            raise DrillError(
                f"target {self.config.name} has no fault for {scenario.name} "
                f"(its config names: {configured})"
            )
        if variant is None:
            return fault
        if variant not in fault.variants:
            choices = ", ".join(fault.variants) or "none"
            raise DrillError(
                f"target {self.config.name}: {scenario.name} has no variant {variant!r} "
                f"(variants: {choices})"
            )
        return fault.variants[variant]

    def fault(self, scenario: Scenario, variant: str | None, drill_id: str) -> tuple[Step, Step]:
        """(inject, restore) from the config; the restore tries every action."""
        steps = self.fault_config(scenario, variant)
        return (
            lambda: perform_all(steps.inject, drill_id),
            lambda: perform_all(steps.restore, drill_id, keep_going=True),
        )

    def expectations(self, scenario: Scenario) -> list[Expectation]:
        """The scenario's alerts, with this target's labels in place of the local stack's."""
        fault = self.config.faults.get(scenario.name)
        override = fault.labels if fault else {}
        return [(alert, {**labels, **override}) for alert, labels in scenario.expect]

    def plan(self, scenario: Scenario, variant: str | None) -> list[str]:
        """What the drill will do to this target, one line per action (shown before --yes)."""
        steps = self.fault_config(scenario, variant)
        lines = []
        if scenario.expect:
            lines += [f"label alerts:  {a.describe()}" for a in self.config.drill_label.set]
        if scenario.deadman and self.config.deadman is not None:
            lines.append(f"mark drill:    PUT {self.config.deadman.url}/api/v1/drill")
        lines += [f"inject:        {a.describe()}" for a in steps.inject]
        lines += [f"restore:       {a.describe()}" for a in steps.restore]
        lines += [f"remove label:  {a.describe()}" for a in self.config.drill_label.clear]
        if scenario.deadman and self.config.deadman is not None:
            lines.append(f"unmark drill:  DELETE {self.config.deadman.url}/api/v1/drill/<id>")
        return lines

    # --- observing ---------------------------------------------------------------------

    def servers_answering(self) -> dict[str, bool]:
        """Whether Prometheus, Alertmanager, the relay and the exporter answer."""
        checks = {
            "prometheus": f"{self.prometheus_url}/-/ready",
            "alertmanager": f"{self.alertmanager_url}/-/ready",
            "relay": f"{self.relay_url}/health",
            "exporter": f"{self.exporter_url}/health",
        }
        if self.config.deadman is not None:
            checks["deadman"] = f"{self.config.deadman.url.rstrip('/')}/ready"
        answering = {}
        for name, url in checks.items():
            try:
                status = httpx.get(url, timeout=3).status_code
            except httpx.HTTPError:
                status = 0
            # The exporter answers 503 while a dependency is down; that is still an answer.
            answering[name] = status == 200 or (name == "exporter" and status == 503)
        return answering

    def dingtalk_messages(self, since: float) -> list[Message]:
        """Messages DingTalk accepted since a unix time, as the relay recorded them."""
        token = self.config.relay.token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        response = httpx.get(
            f"{self.relay_url}/api/v1/deliveries",
            params={"since": since},
            headers=headers,
            timeout=5,
        )
        if response.status_code != 200:
            raise DrillError(
                f"relay {self.relay_url} answered {response.status_code} for its deliveries: "
                f"{response.text[:200]}"
            )
        return [
            Message(d["sent_at"], f"dingtalk:{d['target']}", d["title"], d["text"])
            for d in response.json()["deliveries"]
        ]

    def deadman_messages(self, since: float) -> list[Message]:
        """Messages DingTalk accepted from the dead man's switch, as the switch recorded them."""
        return self._deadman().deliveries(since)

    def emails(self, since: float) -> list[Message]:
        """Emails in the configured mailbox that arrived since a unix time."""
        return self.config.mailbox.imap.messages_since(since)

    # --- acting ------------------------------------------------------------------------

    def label_alerts(self, drill_id: str, expected: list[Expectation]) -> None:
        """Run the config's actions that mark the expected alerts drill=<id>."""
        alerts = format_alerts([(alert.value, labels) for alert, labels in expected])
        perform_all(self.config.drill_label.set, drill_id, drill_alerts=alerts)

    def unlabel_alerts(self, drill_id: str) -> None:
        """Run the config's actions that remove the drill label (each one is tried)."""
        perform_all(self.config.drill_label.clear, drill_id, keep_going=True)
