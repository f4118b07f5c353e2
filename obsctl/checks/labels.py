"""Label values that are raw request data (URLs, ids, query strings) instead of bounded names.

Every distinct label value is a new series in Prometheus: a `route` label holding the URL a
client asked for (`/api/tasks/12345`, `/api/tasks?user_id=7`) makes one series per task or
query, and the per-route alerts and panels never see two requests of the same route together.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_LONG_HEX = re.compile(r"^(?=.*[0-9])(?=.*[a-f])[0-9a-f]{12,}$", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"[0-9]{4,}")
# An Express parameter (:id), a wildcard or a regex group: a route pattern's own syntax.
_PATTERN_SYNTAX = re.compile(r"^(?::\w+\??|\*|\(.*\))$")


def raw_value_reason(value: str) -> str | None:
    """Why a label value looks like a raw URL or id rather than a route pattern; None if not."""
    if _SCHEME.match(value):
        return "a full URL"
    if "?" in value:
        return "a query string"
    if not value.startswith("/"):
        return None
    if "#" in value:
        return "a URL fragment"
    if "%" in value:
        return "a percent-encoded URL"
    for segment in value.split("/"):
        reason = _segment_reason(segment)
        if reason:
            return f"{reason} ({segment!r}) in the path"
    return None


def _segment_reason(segment: str) -> str | None:
    if not segment or _PATTERN_SYNTAX.match(segment):
        return None
    if segment.isdigit():
        return "a numeric id"
    if _UUID.match(segment):
        return "a UUID"
    if _LONG_HEX.match(segment):
        return "a hex id"
    if "@" in segment:
        return "an e-mail address"
    if _DIGIT_RUN.search(segment):
        return "an id"
    return None
