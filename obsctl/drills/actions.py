"""Fault and label actions a target config names: a command to run or an HTTP request to make.

A remote system cannot be stopped the way the local stack is (obsctl does not own its
processes), so its target config says how, in the spirit of chaostoolkit's process and HTTP
providers. ``{drill_id}`` anywhere in an argument, URL or JSON string is replaced by the drill's id,
``{drill_alerts}`` by the alerts it expects (``Name/key=value,Other``, for the label tool).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from obsctl.config_types import Duration
from obsctl.configfile import StrictModel
from obsctl.drills.target import DrillError

_OUTPUT_TAIL = 400


class RunAction(StrictModel):
    """Run a command (no shell) and require exit code 0, e.g. ``[ssh, db1, systemctl, stop, …]``."""

    run: list[str] = Field(min_length=1)
    timeout: Duration = 60.0
    cwd: Path | None = None

    def describe(self) -> str:
        """One line for the plan shown before a drill."""
        return "run: " + " ".join(self.run)

    def perform(self, drill_id: str, drill_alerts: str = "") -> str:
        """Run it; DrillError with the exit code and output tail when it fails."""
        argv = [_fill(arg, drill_id, drill_alerts) for arg in self.run]
        try:
            done = subprocess.run(
                argv,
                cwd=self.cwd,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                start_new_session=True,  # Ctrl-C is the drill's to handle, not the command's
            )
        except FileNotFoundError:
            raise DrillError(f"{argv[0]}: command not found") from None
        except subprocess.TimeoutExpired:
            raise DrillError(f"`{' '.join(argv)}` still running after {self.timeout:g}s") from None
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise DrillError(
                f"`{' '.join(argv)}` exited {done.returncode}: {output[-_OUTPUT_TAIL:]}"
            )
        return output[-_OUTPUT_TAIL:] or "exit 0"


class HttpRequest(StrictModel):
    """One HTTP request; any 2xx answer is success unless `expect_status` says otherwise."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    # Sent as "Authorization: Bearer <token>" (a whole ${VAR} value, unlike a header template).
    bearer_token: SecretStr | None = None
    json_body: Any = Field(default=None, alias="json")
    timeout: Duration = 30.0
    expect_status: list[int] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://\S+$", value):
            raise ValueError(f"expected an http(s) URL, found {value!r}")
        return value


class HttpAction(StrictModel):
    """Make an HTTP request, e.g. flip a feature flag or a fault knob of the platform."""

    http: HttpRequest

    def describe(self) -> str:
        """One line for the plan (headers are never shown: they carry tokens)."""
        return f"http: {self.http.method} {self.http.url}"

    def perform(self, drill_id: str, drill_alerts: str = "") -> str:
        """Send it; DrillError naming the URL and status when the answer is not the expected one."""
        request = self.http
        url = _fill(request.url, drill_id, drill_alerts)
        headers = {k: v.get_secret_value() for k, v in request.headers.items()}
        if request.bearer_token is not None:
            headers["Authorization"] = f"Bearer {request.bearer_token.get_secret_value()}"
        try:
            response = httpx.request(
                request.method,
                url,
                headers=headers,
                json=_fill_json(request.json_body, drill_id, drill_alerts),
                timeout=request.timeout,
            )
        except httpx.HTTPError as exc:
            raise DrillError(f"{request.method} {url}: {type(exc).__name__}: {exc}") from None
        ok = (
            response.status_code in request.expect_status
            if request.expect_status
            else response.is_success
        )
        if not ok:
            raise DrillError(
                f"{request.method} {url} answered {response.status_code}: "
                f"{response.text[:_OUTPUT_TAIL]}"
            )
        return f"{request.method} {url} -> {response.status_code}"


Action = RunAction | HttpAction


def perform_all(
    actions: list[Action], drill_id: str, keep_going: bool = False, drill_alerts: str = ""
) -> str:
    """Perform actions in order; stop at the first failure, or (restores) try every one."""
    outputs, errors = [], []
    for action in actions:
        try:
            outputs.append(action.perform(drill_id, drill_alerts))
        except DrillError as exc:
            if not keep_going:
                raise
            errors.append(str(exc))
    if errors:
        raise DrillError("; ".join(errors))
    return "; ".join(outputs)


def _fill(text: str, drill_id: str, drill_alerts: str = "") -> str:
    return text.replace("{drill_id}", drill_id).replace("{drill_alerts}", drill_alerts)


def _fill_json(value: Any, drill_id: str, drill_alerts: str = "") -> Any:
    if isinstance(value, str):
        return _fill(value, drill_id, drill_alerts)
    if isinstance(value, list):
        return [_fill_json(v, drill_id, drill_alerts) for v in value]
    if isinstance(value, dict):
        return {k: _fill_json(v, drill_id, drill_alerts) for k, v in value.items()}
    return value
