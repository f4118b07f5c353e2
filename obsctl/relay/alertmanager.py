"""The Alertmanager webhook payload (version "4"), parsed and normalised at intake.

Everything that later code formats is made safe here, once: times are timezone-aware UTC
inside a range every formatter handles (a time outside it, or none, becomes None and the
message says the time is unknown), and counters are clamped. A webhook body is refused (4xx)
only when it is not an Alertmanager notification at all; one odd alert never costs the others.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

Status = Literal["firing", "resolved"]
# Alertmanager marks "no end yet" with Go's zero time, 0001-01-01T00:00:00Z.
_ZERO_TIME_YEAR = 1
# Times outside these years are not real alert times; formatting them in a far time zone
# would overflow datetime (year 9999 + 8 h), so they are dropped at intake.
_FIRST_YEAR, _LAST_YEAR = 1970, 2999
# Alertmanager never truncates more alerts than a group can hold; anything larger is noise.
MAX_TRUNCATED = 1_000_000


class PayloadError(ValueError):
    """A webhook body that can never be delivered; `status` is the HTTP answer for it."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


def _normalised_time(value: datetime | None) -> datetime | None:
    if value is None or value.year <= _ZERO_TIME_YEAR:
        return None
    if value.tzinfo is None:  # Alertmanager always sends a zone; a bare time is read as UTC
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return value if _FIRST_YEAR <= value.year <= _LAST_YEAR else None


class Alert(BaseModel):
    """One alert of a notification."""

    # Alertmanager may add fields in later versions; unknown ones are ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Status
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # None when Alertmanager sent a time no formatter can show (see _normalised_time).
    startsAt: datetime | None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("startsAt", "endsAt", mode="wrap")
    @classmethod
    def _safe_time(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> datetime | None:
        try:
            parsed = handler(value)
        except ValidationError:  # not a time at all: shown as unknown, like one out of range
            return None
        return _normalised_time(parsed)

    @property
    def name(self) -> str:
        """The alertname label."""
        return self.labels.get("alertname", "(no alertname)")

    @property
    def severity(self) -> str:
        """The severity label, "none" when absent."""
        return self.labels.get("severity", "none")

    @property
    def identity(self) -> str:
        """Alertmanager's fingerprint, or a hash of the labels when it sent none."""
        if self.fingerprint:
            return self.fingerprint[:64]
        canonical = json.dumps(sorted(self.labels.items()), ensure_ascii=False)
        return "labels:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


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

    @field_validator("truncatedAlerts")
    @classmethod
    def _bounded(cls, value: int) -> int:
        return max(0, min(value, MAX_TRUNCATED))


def parse(body: bytes) -> Notification:
    """Parse a webhook body, raising PayloadError(400 or 422) that says what is wrong."""
    try:
        data: Any = json.loads(body)
    except RecursionError:
        raise PayloadError(400, "body is nested too deeply to be a webhook") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise PayloadError(400, f"body must be a JSON object, found {type(data).__name__}")
    version = data.get("version")
    if version != "4":
        shown = version if isinstance(version, str | int | float | None) else type(version).__name__
        raise PayloadError(
            422,
            f'version: expected "4" (the Alertmanager webhook format), found {str(shown)[:40]!r}',
        )
    try:
        return Notification.model_validate(data)
    except RecursionError:
        raise PayloadError(400, "body is nested too deeply to be a webhook") from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False)[:5]:
            where = ".".join(str(part)[:40] for part in error["loc"]) or "(top level)"
            problems.append(f"{where}: {error['msg'][:200]}")
        more = exc.error_count() - len(problems)
        suffix = f"; and {more} more problems" if more > 0 else ""
        raise PayloadError(422, "; ".join(problems) + suffix) from None
