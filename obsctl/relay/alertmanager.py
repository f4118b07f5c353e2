"""The Alertmanager webhook payload (version "4") and its parsing into a typed model."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Status = Literal["firing", "resolved"]
# Alertmanager marks "no end yet" with Go's zero time, 0001-01-01T00:00:00Z.
_ZERO_TIME_YEAR = 1


class PayloadError(ValueError):
    """A webhook body that can never be delivered; `status` is the HTTP answer for it."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class Alert(BaseModel):
    """One alert of a notification."""

    # Alertmanager may add fields in later versions; unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Status
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("endsAt")
    @classmethod
    def _zero_time_is_none(cls, value: datetime | None) -> datetime | None:
        return None if value is None or value.year <= _ZERO_TIME_YEAR else value

    @property
    def name(self) -> str:
        """The alertname label."""
        return self.labels.get("alertname", "(no alertname)")

    @property
    def severity(self) -> str:
        """The severity label, "none" when absent."""
        return self.labels.get("severity", "none")


class Notification(BaseModel):
    """One webhook body: a group of alerts sent together by Alertmanager."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Status
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert]


def parse(body: bytes) -> Notification:
    """Parse a webhook body, raising PayloadError(400 or 422) that says what is wrong."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError(400, f"body must be a JSON object, found {type(data).__name__}")
    version = data.get("version")
    if version != "4":
        raise PayloadError(
            422, f'version: expected "4" (the Alertmanager webhook format), found {version!r}'
        )
    try:
        return Notification.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{where}: {error['msg']}")
        more = len(exc.errors()) - len(problems)
        suffix = f"; and {more} more problems" if more > 0 else ""
        raise PayloadError(422, "; ".join(problems) + suffix) from None
