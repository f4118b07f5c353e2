"""The robots file: which access tokens exist and how each robot is secured."""

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

NonEmpty = Annotated[str, StringConstraints(min_length=1)]

# DingTalk's documented limit for a custom robot, and what happens past it:
# "每个机器人每分钟最多发送20条。如果超过20条, 会限流10分钟".
DEFAULT_RATE_LIMIT_PER_MINUTE = 20
DEFAULT_THROTTLE_SECONDS = 600.0


class Robot(BaseModel):
    """One custom robot's security settings."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    secret: NonEmpty | None = None
    keywords: list[NonEmpty] = Field(default_factory=list, max_length=10)
    rate_limit_per_minute: int = Field(default=DEFAULT_RATE_LIMIT_PER_MINUTE, ge=1)
    # After one send over the limit, every send is refused this long.
    throttle_seconds: float = Field(default=DEFAULT_THROTTLE_SECONDS, ge=0)


class RobotsFileError(Exception):
    """The robots file cannot be used; the message says where and why."""


_ROBOTS = TypeAdapter(dict[NonEmpty, Robot])


def _where(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "top level"
    token, *rest = (str(part) for part in loc)
    # Access tokens are credentials: show just enough to find the entry.
    return ".".join([f"robot {token[:4]}...", *rest])


def load_robots(path: Path) -> dict[str, Robot]:
    """Read ``{"<token>": {"secret", "keywords", "rate_limit_per_minute", "throttle_seconds"}}``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RobotsFileError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise RobotsFileError(f"{path}: not valid JSON: {exc}") from None
    try:
        return _ROBOTS.validate_python(raw)
    except ValidationError as exc:
        # Only locations and messages: the input values may be secrets.
        problems = "; ".join(f"{_where(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise RobotsFileError(f"{path}: {problems}") from None
