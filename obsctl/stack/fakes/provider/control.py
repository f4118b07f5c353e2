"""The provider fake's runtime switches and the validation of updates to them."""

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from obsctl.stack.fakes.validation import first_error

# submit_error: only POST /v1/tasks fails (HTTP 500), while the heartbeat and the polls of tasks
# already accepted still answer: the outage a heartbeat misses and a circuit breaker catches.
# task_failure: every call answers, but each task accepted finishes as failed: the outage
# neither a heartbeat nor a breaker sees, only the retries and the dead letters of the tasks.
Mode = Literal["ok", "slow", "error", "down", "timeout", "submit_error", "task_failure"]


class ControlError(ValueError):
    """A refused control update; the message names the offending field."""


class _Update(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Mode | None = None
    latency_ms: int | None = Field(default=None, ge=0, le=120_000)
    failure_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    task_latency_ms: int | None = Field(default=None, ge=1, le=600_000)
    jitter_median_ms: int | None = Field(default=None, ge=0, le=10_000)
    jitter_sigma: float | None = Field(default=None, ge=0.0, le=2.0)


@dataclass
class Control:
    """How the provider fake behaves right now."""

    provider: str
    mode: Mode = "ok"
    latency_ms: int = 500
    failure_rate: float = 0.05
    task_latency_ms: int = 800
    # The latency jitter of a real provider's answers in "ok" mode: lognormal around the
    # median (0 turns it off); sigma 0.5 puts two thirds of answers within 0.6x..1.6x of it.
    jitter_median_ms: int = 0
    jitter_sigma: float = 0.5

    def snapshot(self) -> dict[str, Any]:
        """Return the state as the JSON that ``GET /_control`` answers."""
        return asdict(self)

    def apply(self, payload: object) -> dict[str, tuple[Any, Any]]:
        """Validate a partial update, apply it, and return each changed field as (old, new)."""
        try:
            update = _Update.model_validate(payload)
        except ValidationError as exc:
            raise ControlError(first_error(exc)) from None
        values = update.model_dump(exclude_unset=True)
        for field, value in values.items():
            if value is None:
                raise ControlError(f"{field}: must not be null")
        changes = {
            field: (getattr(self, field), value)
            for field, value in values.items()
            if getattr(self, field) != value
        }
        for field, value in values.items():
            setattr(self, field, value)
        return changes
