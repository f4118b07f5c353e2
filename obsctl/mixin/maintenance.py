"""Recurring maintenance windows (obsctl.yaml `maintenance:`) as Alertmanager time intervals.

A window mutes the alerts its matchers select while it is open: the generated config gets one
`time_intervals` entry per window and, ahead of the severity routes, a route for the window's
matchers whose whole subtree carries `mute_time_intervals` (Alertmanager does not inherit
them). A muted alert still fires in Prometheus and shows in Alertmanager; it only sends nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from copy import deepcopy
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from obsctl.silences import Matcher, all_match

WindowName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
_TIME = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d-(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$")
_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = "|".join(_DAY_NAMES)
_WEEKDAYS = re.compile(rf"^(?:{_DAY})(?::(?:{_DAY}))?$")
# Alertmanager's matcher syntax, label name then =, !=, =~ or !~ then a quoted value.
_MATCHER = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"$')


def _time_range(value: str) -> str:
    if not _TIME.fullmatch(value):
        raise ValueError(f"expected HH:MM-HH:MM (24-hour, end up to 24:00), found {value!r}")
    start, end = value.split("-")
    if end <= start:
        raise ValueError(
            f"{value!r} ends before it starts; a window past midnight is two ranges, "
            f"e.g. {start}-24:00 and 00:00-{end}"
        )
    return value


def _weekdays(value: str) -> str:
    if not _WEEKDAYS.fullmatch(value):
        raise ValueError(f"expected a weekday or a range such as monday:friday, found {value!r}")
    return value


def _location(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a time zone name such as Asia/Shanghai: {value!r}") from None
    return value


def _matcher(value: str) -> str:
    if not _MATCHER.fullmatch(value.strip()):
        raise ValueError(f'expected a matcher such as dependency="mysql", found {value!r}')
    Matcher.parse(value)  # a bad regular expression
    return value.strip()


class MaintenanceWindow(BaseModel):
    """One recurring window: when it is open (in its time zone) and which alerts it mutes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comment: str = Field(min_length=1, max_length=200)
    location: Annotated[str, AfterValidator(_location)] = "Asia/Shanghai"
    times: list[Annotated[str, AfterValidator(_time_range)]] = Field(min_length=1)
    weekdays: list[Annotated[str, AfterValidator(_weekdays)]] = Field(default_factory=list)
    # The alerts it mutes, all of these matching; at least one, so no window mutes everything.
    mute: list[Annotated[str, AfterValidator(_matcher)]] = Field(min_length=1)

    def is_open(self, at: dt.datetime) -> bool:
        """Whether the window is open at a moment (an aware datetime), as Alertmanager sees it."""
        local = at.astimezone(zoneinfo.ZoneInfo(self.location))
        if self.weekdays and not any(_on(day, local.weekday()) for day in self.weekdays):
            return False
        minute = local.hour * 60 + local.minute
        return any(_minutes(start) <= minute < _minutes(end) for start, end in self._ranges())

    def selects(self, labels: dict[str, str]) -> bool:
        """Whether the window mutes an alert with these labels."""
        return all_match([Matcher.parse(m) for m in self.mute], labels)

    def _ranges(self) -> list[tuple[str, str]]:
        return [(span.split("-")[0], span.split("-")[1]) for span in self.times]

    def time_interval(self, name: str) -> dict[str, Any]:
        """The window as an Alertmanager `time_intervals` entry."""
        ranges = [{"start_time": start, "end_time": end} for start, end in self._ranges()]
        interval: dict[str, Any] = {"times": ranges, "location": self.location}
        if self.weekdays:
            interval["weekdays"] = list(self.weekdays)
        return {"name": name, "time_intervals": [interval]}


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _on(days: str, weekday: int) -> bool:
    """Whether a weekday (0 = Monday) is in `monday` or `monday:friday`."""
    first, _, last = days.partition(":")
    start, end = _DAY_NAMES.index(first), _DAY_NAMES.index(last or first)
    return start <= weekday <= end if start <= end else weekday >= start or weekday <= end


def muted(route: dict[str, Any], window: str) -> dict[str, Any]:
    """A copy of a route whose every node is muted during the window."""
    copy = {**deepcopy(route), "mute_time_intervals": [window]}
    if "routes" in route:
        copy["routes"] = [muted(child, window) for child in route["routes"]]
    return copy


def window_routes(
    windows: dict[str, MaintenanceWindow], severity_routes: list[dict[str, Any]], fallback: str
) -> list[dict[str, Any]]:
    """One route per window, its matchers over the severity routes, muted while it is open.

    An alert that several windows select is governed by the first (routes stop at the first
    match); the windows keep their order in obsctl.yaml.
    """
    return [
        {
            "matchers": list(window.mute),
            "receiver": fallback,  # what the root gives an alert no severity route takes
            "routes": [muted(route, name) for route in severity_routes],
        }
        for name, window in windows.items()
    ]
