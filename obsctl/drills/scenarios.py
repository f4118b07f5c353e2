"""The drill scenarios: what each fault is and which alerts it must fire, as data.

How a fault is injected and undone belongs to the target: the local stack's actions are in
``obsctl.drills.local`` (LOCAL_FAULTS), a remote target's in its config (``faults:``), both keyed
by the scenario's name.
"""

from __future__ import annotations

from dataclasses import dataclass

from obsctl.metric_names import BusinessMetric
from obsctl.mixin.config import AlertName

# Alerts a drill must see fire and resolve, with the labels that pick the right one.
Expectation = tuple[AlertName, dict[str, str]]

QUEUE = "outpaint"  # the queue the backlog drill floods
PROVIDER = "beta"  # the provider the outage drill takes down
BACKLOG_JOBS = 600  # above the shipped 500-job threshold
UNSAFE_EVICTION_POLICY = "allkeys-lru"  # evicts BullMQ's keys under memory pressure
# One client creating tasks 20 times a second: past the shipped task_create limit (60 a minute
# per user), under the per-user limit of every route (50 a second).
STORM_LIMITER = "task_create"
STORM_REQUESTS_PER_SECOND = 20
STORM_USER_ID = 1000  # the last seeded user: the flood leaves user 1, which tests post as, alone


@dataclass(frozen=True)
class Invariant:
    """What must still hold once the fault's alert fires: a PromQL value and its floor."""

    description: str
    expr: str  # one instant value
    minimum: float

    def judge(self, result: list[dict[str, object]]) -> tuple[bool, str]:
        """Whether a Prometheus instant-query result holds, and the value that says so."""
        if not result:
            return False, f"no value: {self.expr} returned nothing"
        value = float(result[0]["value"][1])  # type: ignore[index]
        verdict = ">=" if value >= self.minimum else "<"
        return value >= self.minimum, f"{value:.3g} {verdict} {self.minimum:g}"


def _task_pass_rate(window: str) -> str:
    """Succeeded / finished tasks over the window, all features and providers."""
    ok = f"sum(increase({BusinessMetric.TASK_SUCCEEDED.value}[{window}]))"
    failed = f"sum(increase({BusinessMetric.TASK_FAILED.value}[{window}]))"
    return f"{ok} / ({ok} + {failed})"


# The plan's degradedSuccessRate (BE-ASYNC-003): with one provider failing, at least 90 % of
# the tasks still succeed, on the other providers. Without the fallback about half would fail.
DEGRADED_PASS_RATE = Invariant(
    "tasks keep succeeding on the other provider (pass rate over the last minute)",
    _task_pass_rate("1m"),
    0.9,
)


@dataclass(frozen=True)
class Scenario:
    """One kind of fault: its name, what it does, what must fire, and its variants."""

    name: str
    summary: str
    expect: list[Expectation]
    health_group: str | None = None  # /health/<group> must turn 503 during the fault
    variants: tuple[str, ...] = ()
    # The fault stops the alert path itself: the dead man's switch (obsctl deadman), not
    # Prometheus, must page on-call (WatchdogMissing) and then tell the recovery.
    deadman: bool = False
    stops: str | None = None  # a server that must stop answering during the fault
    # Its alert waits minutes (`for`) before firing: `make bench-drills` runs it end to end,
    # the test suite only its fault and restore.
    slow: bool = False
    holds: tuple[Invariant, ...] = ()  # checked once every expected alert has fired


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            name="mysql-down",
            summary="stop MySQL (variant hang: freeze it with SIGSTOP)",
            expect=[(AlertName.DEPENDENCY_DOWN, {"dependency": "mysql"})],
            health_group="db",
            variants=("hang",),
        ),
        Scenario(
            name="redis-down",
            summary="stop Redis (variant hang: freeze it with SIGSTOP)",
            expect=[(AlertName.DEPENDENCY_DOWN, {"dependency": "redis"})],
            health_group="redis",
            variants=("hang",),
        ),
        Scenario(
            name="queue-backlog",
            summary=f"pause the workers and add {BACKLOG_JOBS} real BullMQ jobs to '{QUEUE}'",
            expect=[(AlertName.QUEUE_BACKLOG_HIGH, {"queue": QUEUE})],
        ),
        Scenario(
            name="api-errors",
            summary="raise the demo platform's 5xx rate to 5 %",
            expect=[(AlertName.API_HIGH_ERROR_RATE, {})],
        ),
        Scenario(
            name="api-latency",
            summary="add 400 ms to every API request",
            expect=[(AlertName.API_HIGH_LATENCY_P95, {})],
        ),
        Scenario(
            name="provider-outage",
            summary=f"make provider '{PROVIDER}' time out",
            expect=[(AlertName.PROVIDER_DOWN, {"provider": PROVIDER})],
            health_group="providers",
        ),
        Scenario(
            name="breaker-open",
            summary=f"make provider '{PROVIDER}' refuse new tasks (HTTP 500) while its heartbeat"
            " answers: the platform's circuit breaker opens and tasks go to the other provider",
            expect=[(AlertName.CIRCUIT_BREAKER_OPEN, {"provider": PROVIDER})],
            holds=(DEGRADED_PASS_RATE,),
        ),
        Scenario(
            name="dead-letter",
            summary=f"make provider '{PROVIDER}' accept every task and fail it on its side: the"
            " heartbeat and the breaker see successful calls, each of its tasks fails all 3"
            " attempts and lands in the dead-letter queue",
            expect=[(AlertName.DEAD_LETTER_JOBS_GROWING, {})],
        ),
        Scenario(
            name="cos-down",
            summary="stop the S3 endpoint that stands in for COS",
            expect=[(AlertName.DEPENDENCY_DOWN, {"dependency": "cos"})],
            health_group="cos",
        ),
        Scenario(
            name="redis-eviction-policy",
            summary=f"switch the queue Redis to maxmemory-policy {UNSAFE_EVICTION_POLICY} with"
            " CONFIG SET (BullMQ needs noeviction)",
            expect=[(AlertName.REDIS_EVICTION_POLICY_UNSAFE, {"policy": UNSAFE_EVICTION_POLICY})],
            slow=True,
        ),
        Scenario(
            name="rate-limit-storm",
            summary=f"one client floods POST /api/tasks at {STORM_REQUESTS_PER_SECOND} requests/s,"
            f" past the {STORM_LIMITER} rate limit",
            expect=[(AlertName.RATE_LIMIT_REJECTIONS_HIGH, {"limiter": STORM_LIMITER})],
        ),
        Scenario(
            name="stats-lag",
            summary="pause the platform's tasks_daily_stats aggregator while tasks keep"
            " finishing (POST /admin/daily-stats/pause)",
            expect=[(AlertName.DAILY_STATS_LAG_HIGH, {})],
        ),
        Scenario(
            name="cache-miss-storm",
            summary="flush the platform's cfg:* config keys and its local LRU, and keep both"
            " missing (PUT /admin/config-cache storm): every config lookup loads from MySQL",
            expect=[(AlertName.CONFIG_CACHE_HIT_RATIO_LOW, {})],
        ),
        Scenario(
            name="alert-path-down",
            summary="stop Alertmanager (variant hang: freeze it with SIGSTOP)",
            expect=[],
            variants=("hang",),
            deadman=True,
            stops="alertmanager",
        ),
    ]
}
