"""Prometheus as the snapshot renderer reads it: range queries over a time range, as Grafana would.

Queries go through the same variable substitution as in Grafana: `$__rate_interval` from the
step, and template variables from `values` (`.*`, Grafana's "All", when not given).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

# Grafana's default scrape interval for $__rate_interval = max(step + scrape, 4 * scrape).
SCRAPE_SECONDS = 15.0
POINTS = 240  # points per range query when no step is given (about a panel's width)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class RenderError(ValueError):
    """A time range, step or variable that cannot be used."""


class QueryError(RuntimeError):
    """Prometheus refused a query or could not be reached."""


@dataclass(frozen=True)
class TimeRange:
    """Start and end (Unix seconds) of the drawn range and the step of the range queries."""

    start: float
    end: float
    step: float

    @property
    def rate_interval(self) -> str:
        """What Grafana would put in place of $__rate_interval for this step."""
        seconds = max(self.step + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)
        return f"{math.ceil(seconds)}s"


@dataclass(frozen=True)
class Series:
    """One series of a range query."""

    labels: Mapping[str, str]
    times: Sequence[float]
    values: Sequence[float]

    def last(self) -> float:
        """The latest value that is a number (NaN if none)."""
        for value in reversed(self.values):
            if not math.isnan(value):
                return value
        return math.nan


def duration_seconds(text: str) -> float:
    """Seconds of a Prometheus-style duration such as 15s, 5m, 1h."""
    found = _DURATION.match(text.strip())
    if not found:
        raise RenderError(f"{text!r} is not a duration such as 15s, 5m or 1h")
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def parse_time(text: str, now: float) -> float:
    """Unix seconds of `now`, `now-1h`, `1h` (one hour ago), a Unix time or an ISO 8601 time."""
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("now-"):
        return now - duration_seconds(value[4:])
    if _DURATION.match(value):
        return now - duration_seconds(value)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RenderError(
            f"{text!r} is not a time: use now, now-1h, 1h, a Unix time or an ISO 8601 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def time_range(start: str, end: str, step: str | None, now: float | None = None) -> TimeRange:
    """A checked time range; without a step, one giving about POINTS points."""
    current = time.time() if now is None else now
    first, last = parse_time(start, current), parse_time(end, current)
    if first >= last:
        raise RenderError(f"the range from {start!r} to {end!r} is empty")
    if step is None:
        seconds = max(5.0, math.ceil((last - first) / POINTS))
    else:
        seconds = duration_seconds(step)
    if (last - first) / seconds > 11_000:
        raise RenderError(f"step {seconds:g}s gives more than 11000 points (Prometheus' limit)")
    return TimeRange(first, last, seconds)


def expand(expr: str, rate_interval: str, values: Mapping[str, str] | None = None) -> str:
    """The query Grafana would send: $__rate_interval and template variables replaced."""
    chosen = values or {}

    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        if name == "__rate_interval":
            return rate_interval
        if name.startswith("__"):
            raise RenderError(f"unsupported Grafana variable ${name} in {expr!r}")
        return chosen.get(name, ".*")

    return _VARIABLE.sub(replace, expr)


class Prometheus:
    """The few Prometheus HTTP API calls the renderer and the tests need."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def query_range(self, expr: str, window: TimeRange) -> list[Series]:
        """Every series of a range query; QueryError when Prometheus refuses it."""
        data = self._get(
            "/api/v1/query_range",
            {"query": expr, "start": window.start, "end": window.end, "step": window.step},
        )
        return [
            Series(
                item["metric"],
                [float(t) for t, _ in item["values"]],
                [float(v) for _, v in item["values"]],
            )
            for item in data["result"]
        ]

    def query(self, expr: str) -> list[Series]:
        """Every series of an instant query (now)."""
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            moment, value = data["result"]
            return [Series({}, [float(moment)], [float(value)])]
        return [
            Series(item["metric"], [float(item["value"][0])], [float(item["value"][1])])
            for item in data["result"]
        ]

    def label_values(self, label: str, selector: str) -> list[str]:
        """Values of a label among the series a selector matches (Grafana's label_values)."""
        result: list[str] = self._get(f"/api/v1/label/{label}/values", {"match[]": selector})
        return result

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        try:
            response = self._client.get(path, params=dict(params))
        except httpx.HTTPError as exc:
            raise QueryError(f"cannot reach Prometheus at {self._client.base_url}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            raise QueryError(f"HTTP {response.status_code} from Prometheus: not JSON") from None
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]
