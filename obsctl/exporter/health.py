"""The /health bodies: answered from the latest probe results, never by probing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from obsctl import __version__
from obsctl.exporter.leader import Leadership, Role, Why
from obsctl.exporter.probes.base import Status
from obsctl.exporter.results import Key, ProbeRecord

# /health/<group> -> the probe kinds it reports; the dependency names seen in "deps".
GROUPS: dict[str, tuple[str, ...]] = {
    "db": ("mysql",),
    "redis": ("redis",),
    "cos": ("cos",),
    "providers": ("provider",),
}
_DEP_NAMES = {"mysql": "db", "redis": "redis", "cos": "cos"}


def dependency_name(kind: str, target: str) -> str:
    """'db', 'redis', 'cos' for the main targets; 'provider:<name>' for providers."""
    if kind == "provider":
        return f"provider:{target}"
    base = _DEP_NAMES.get(kind, kind)
    return base if target == "main" else f"{base}:{target}"


def dependency(record: ProbeRecord, now: float, stale_after_intervals: int) -> dict[str, Any]:
    """One dependency's entry: ok, status, latency_ms, reason, checked_at."""
    outcome = record.latest
    if outcome is None:
        return {"ok": False, "status": "unknown", "latency_ms": None,
                "reason": "not_checked_yet", "checked_at": None}  # fmt: skip
    stale = now - outcome.checked_at > stale_after_intervals * max(record.interval_seconds, 1.0)
    ok = outcome.status is Status.OK and not stale
    reason = "stale" if stale else (outcome.reason.value if outcome.reason else None)
    return {
        "ok": ok,
        "status": outcome.status.value,
        "latency_ms": round(outcome.duration_seconds * 1000, 3),
        "reason": reason,
        "detail": outcome.detail,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(outcome.checked_at)),
    }


def leader(leadership: Leadership) -> dict[str, Any]:
    """This sidecar's part in the election; ok is False while the lease store is unreachable."""
    standing = leadership.standing()
    leading = leadership.leading()
    role = Role.LEADER if leading else Role.FOLLOWER
    return {
        "ok": standing.reason is not Why.REDIS_DOWN,
        "enabled": leadership.enabled,
        "role": role.value,
        "token": standing.token,
        "holder": standing.holder,
        "reason": standing.reason.value if standing.reason else None,
        "detail": standing.detail,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(standing.changed_at)),
    }


def body(
    records: Mapping[Key, ProbeRecord],
    group: str | None,
    started_at: float,
    stale_after_intervals: int,
    leadership: Leadership | None = None,
) -> dict[str, Any]:
    """The JSON body of /health (group None) or /health/<group>; old results count as stale."""
    now = time.time()
    kinds = GROUPS[group] if group else tuple(k for kinds in GROUPS.values() for k in kinds)
    deps = {
        dependency_name(kind, target): dependency(record, now, stale_after_intervals)
        for (kind, target), record in sorted(records.items())
        if kind in kinds
    }
    result: dict[str, Any] = {
        "status": "ok" if all(d["ok"] for d in deps.values()) else "degraded",
        "deps": deps,
    }
    if group is None and leadership is not None and leadership.enabled:
        result["leader"] = leader(leadership)
        if not result["leader"]["ok"]:
            result["status"] = "degraded"
    if group is None:
        result["version"] = __version__
        result["uptime_seconds"] = round(now - started_at, 3)
    return result
