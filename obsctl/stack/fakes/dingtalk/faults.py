"""The fault switch used by retry tests: break the next N sends, or all until changed."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from obsctl.stack.fakes.validation import first_error

FaultMode = Literal["ok", "http_500", "rate_limited", "timeout"]


class FaultError(ValueError):
    """A refused switch update; the message names the offending field."""


class _Update(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: FaultMode
    count: int | None = Field(default=None, ge=1)


class FaultSwitch:
    """Which fault the next ``/robot/send`` requests get, and for how many more."""

    def __init__(self) -> None:
        self.mode: FaultMode = "ok"
        self.remaining: int | None = None

    def snapshot(self) -> dict[str, Any]:
        """Return the state as the JSON that ``GET /_control`` answers."""
        return {"mode": self.mode, "count": self.remaining}

    def apply(self, payload: object) -> None:
        """Validate and apply ``{"mode": ..., "count": N | null}``."""
        try:
            update = _Update.model_validate(payload)
        except ValidationError as exc:
            raise FaultError(first_error(exc)) from None
        self.mode = update.mode
        self.remaining = None if update.mode == "ok" else update.count

    def take(self) -> FaultMode:
        """Return the fault for the request at hand, using up one of the remaining count."""
        mode = self.mode
        if mode != "ok" and self.remaining is not None:
            self.remaining -= 1
            if self.remaining == 0:
                self.mode, self.remaining = "ok", None
        return mode
