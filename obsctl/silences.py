"""Alertmanager silences over its v2 API, and label matchers as Alertmanager reads them."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import httpx

_MATCHER = re.compile(
    r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$'
)


class SilenceError(RuntimeError):
    """Alertmanager refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher: name, value, regex or not, equal or not (the API's fields)."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """`dependency=mysql`, `alertname=~"A|B"`, `team!=ai`; quotes optional, as amtool."""
        found = _MATCHER.fullmatch(text)
        if not found:
            raise ValueError(f'not a matcher such as dependency="mysql": {text!r}')
        name, op, quoted, bare = found.groups()
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{text!r}: not a regular expression ({exc})") from None
        return cls(name, value, is_regex=op in ("=~", "!~"), is_equal=op in ("=", "=~"))

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Matcher:
        """A matcher of a silence as the API gives it."""
        return cls(body["name"], body["value"], bool(body.get("isRegex")),
                   bool(body.get("isEqual", True)))  # fmt: skip

    def api(self) -> dict[str, Any]:
        """The matcher as the API takes it."""
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex,
                "isEqual": self.is_equal}  # fmt: skip

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether an alert with these labels matches (a missing label is the empty string)."""
        value = labels.get(self.name, "")
        hit = re.fullmatch(self.value, value) is not None if self.is_regex else value == self.value
        return hit == self.is_equal

    def __str__(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{op[(self.is_regex, self.is_equal)]}"{quoted}"'


def all_match(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    """Whether every matcher matches the labels."""
    return all(m.matches(labels) for m in matchers)


class Silences:
    """One Alertmanager's silences."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = httpx.request(
                method, f"{self.url}/api/v2{path}", timeout=self.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise SilenceError(f"Alertmanager at {self.url} cannot be reached: {exc}") from None
        if response.status_code >= 400:
            raise SilenceError(
                f"Alertmanager at {self.url} answered {response.status_code} to {method} "
                f"{path}: {response.text.strip()[:300]}"
            )
        return response.json() if response.content else None

    def all(self) -> list[dict[str, Any]]:
        """Every silence Alertmanager still keeps, expired ones too (for 5 days by default)."""
        found: list[dict[str, Any]] = self._call("GET", "/silences")
        return found

    def active(self) -> list[dict[str, Any]]:
        """The silences in force now."""
        return [s for s in self.all() if s.get("status", {}).get("state") == "active"]

    def add(self, matchers: list[Matcher], seconds: float, author: str, comment: str) -> str:
        """Create a silence from now for `seconds`; its id."""
        now = dt.datetime.now(dt.UTC)
        body = {
            "matchers": [m.api() for m in matchers],
            "startsAt": now.isoformat(),
            "endsAt": (now + dt.timedelta(seconds=seconds)).isoformat(),
            "createdBy": author,
            "comment": comment,
        }
        created = self._call("POST", "/silences", json=body)
        return str(created["silenceID"])

    def expire(self, silence_id: str) -> None:
        """End a silence now."""
        self._call("DELETE", f"/silence/{silence_id}")


def muting(silences: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    """The silences that would mute an alert with these labels."""
    return [s for s in silences if all_match([Matcher.from_api(m) for m in s["matchers"]], labels)]
