"""Small PromQL helpers shared by the rule, test and dashboard renderers."""

from __future__ import annotations

import re

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 250ms, 20s, 5m, 1h."""
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def series(metric: str, *matchers: str) -> str:
    """A series selector, `metric{m1, m2}`: the one place selectors are built.

    Each matcher may be empty (left out) or several comma-separated ones; with none left the
    braces are left out too.
    """
    parts = [m.strip().strip(",") for m in matchers if m.strip().strip(",")]
    return f"{metric}{{{', '.join(parts)}}}" if parts else str(metric)


def equality_labels(matchers: str) -> dict[str, str]:
    """The labels a series needs to match `matchers`; only `name="value"` matchers have one."""
    labels: dict[str, str] = {}
    rest = matchers.strip()
    while rest:
        found = _MATCHER.match(rest)
        if found is None:
            raise ValueError(f"cannot parse label matchers {matchers!r}")
        name, op, value = found.groups()
        if op != "=":
            raise ValueError(f"{name}{op}: only equality matchers name a series' labels")
        labels[name] = value
        rest = rest[found.end() :].lstrip(",")
    return labels
