"""The drill scenarios: a real fault, what must happen, and how to undo it."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from obsctl.drills.target import StackTarget
from obsctl.mixin.config import AlertName

# Alerts a drill must see fire and resolve, with the labels that pick the right one.
Expectation = tuple[AlertName, dict[str, str]]
Action = Callable[[StackTarget], None]

QUEUE = "outpaint"  # the queue the backlog drill floods
PROVIDER = "beta"  # the provider the outage drill takes down
BACKLOG_JOBS = 600  # above the shipped 500-job threshold


@dataclass(frozen=True)
class Scenario:
    """One kind of fault: how to inject it, what must fire, how to restore."""

    name: str
    summary: str
    inject: Action
    restore: Action
    expect: list[Expectation]
    health_group: str | None = None  # /health/<group> must turn 503 during the fault
    variants: dict[str, tuple[Action, Action]] = field(default_factory=dict)

    def actions(self, variant: str | None) -> tuple[Action, Action]:
        """(inject, restore) for the chosen variant."""
        if variant is None:
            return self.inject, self.restore
        return self.variants[variant]


def _stop(server: str) -> Action:
    def inject(target: StackTarget) -> None:
        target.signal_server(server, signal.SIGKILL)

    return inject


def _hang(server: str) -> Action:
    def inject(target: StackTarget) -> None:
        target.signal_server(server, signal.SIGSTOP)

    return inject


def _bring_back(server: str) -> Action:
    """Undo both stop and hang: resume a frozen process, restart a missing one."""

    def restore(target: StackTarget) -> None:
        target.signal_server(server, signal.SIGCONT)
        target.restart_missing_servers()

    return restore


def _api_faults(error_rate: float, latency_ms: int) -> Action:
    def act(target: StackTarget) -> None:
        target.admin("PUT", "/admin/faults", {"error_rate": error_rate, "latency_ms": latency_ms})

    return act


def _backlog(target: StackTarget) -> None:
    target.admin("POST", "/admin/workers/pause")
    target.admin("POST", "/admin/workload/burst", {"count": BACKLOG_JOBS, "feature": QUEUE})


def _drain(target: StackTarget) -> None:
    target.admin("POST", "/admin/workers/resume")


def _provider_mode(mode: str) -> Action:
    def act(target: StackTarget) -> None:
        target.admin("PUT", f"/admin/providers/{PROVIDER}", {"mode": mode})

    return act


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="mysql-down",
            summary="stop MySQL (variant hang: freeze it with SIGSTOP)",
            inject=_stop("mariadb"),
            restore=_bring_back("mariadb"),
            expect=[(AlertName.DEPENDENCY_DOWN, {"dependency": "mysql"})],
            health_group="db",
            variants={"hang": (_hang("mariadb"), _bring_back("mariadb"))},
        ),
        Scenario(
            name="redis-down",
            summary="stop Redis (variant hang: freeze it with SIGSTOP)",
            inject=_stop("redis"),
            restore=_bring_back("redis"),
            expect=[(AlertName.DEPENDENCY_DOWN, {"dependency": "redis"})],
            health_group="redis",
            variants={"hang": (_hang("redis"), _bring_back("redis"))},
        ),
        Scenario(
            name="queue-backlog",
            summary=f"pause the workers and add {BACKLOG_JOBS} real BullMQ jobs to '{QUEUE}'",
            inject=_backlog,
            restore=_drain,
            expect=[(AlertName.QUEUE_BACKLOG_HIGH, {"queue": QUEUE})],
        ),
        Scenario(
            name="api-errors",
            summary="raise the demo platform's 5xx rate to 5 %",
            inject=_api_faults(0.05, 0),
            restore=_api_faults(0.0, 0),
            expect=[(AlertName.API_HIGH_ERROR_RATE, {})],
        ),
        Scenario(
            name="api-latency",
            summary="add 400 ms to every API request",
            inject=_api_faults(0.0, 400),
            restore=_api_faults(0.0, 0),
            expect=[(AlertName.API_HIGH_LATENCY_P95, {})],
        ),
        Scenario(
            name="provider-outage",
            summary=f"make provider '{PROVIDER}' time out",
            inject=_provider_mode("timeout"),
            restore=_provider_mode("ok"),
            expect=[(AlertName.PROVIDER_DOWN, {"provider": PROVIDER})],
            health_group="providers",
        ),
        Scenario(
            name="cos-down",
            summary="stop the S3 endpoint that stands in for COS",
            inject=_stop("s3"),
            restore=_bring_back("s3"),
            expect=[(AlertName.DEPENDENCY_DOWN, {"dependency": "cos"})],
            health_group="cos",
        ),
    ]
}
