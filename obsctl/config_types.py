"""Reusable constrained config types: durations like "15s", ports, label values."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, ValidationInfo

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# Longer than any interval, timeout or backoff a config needs; schedulers overflow far beyond.
MAX_DURATION_SECONDS = 30 * 86_400


def parse_duration(value: object) -> float:
    """'250ms', '15s', '2m', '1h' or a number of seconds -> seconds as float."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '15s' or '250ms'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected a duration such as '15s' or '250ms', found {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"expected a duration such as '15s' or '250ms', found {value!r}")
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, found {value!r}")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration must be at most 30 days, found {str(value)[:40]!r}")
    return seconds


# Seconds, written in config as "15s" / "250ms"; always > 0.
Duration = Annotated[float, BeforeValidator(parse_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A Prometheus label value we put on series: short and predictable.
LabelValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")]


# Field validators shared by the probe configs: attach with
# `_timeout_fits = field_validator("timeout")(timeout_within_interval)`. They are field-level
# (not model-level) so an error names its key and never echoes a DSN from elsewhere in the model.


def timeout_within_interval(value: float, info: ValidationInfo) -> float:
    """A run must end before the next one is due."""
    interval = info.data.get("interval")
    if interval is not None and value > interval:
        raise ValueError(f"timeout ({value:g}s) must not be longer than interval ({interval:g}s)")
    return value


def slow_below_timeout(value: float, info: ValidationInfo) -> float:
    """'Slow' must be reachable before the run times out."""
    timeout = info.data.get("timeout")
    if timeout is not None and value >= timeout:
        raise ValueError(f"slow_threshold ({value:g}s) must be shorter than timeout ({timeout:g}s)")
    return value


def no_repeats(value: list[str]) -> list[str]:
    """Every entry of a list of names at most once."""
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ValueError(f"values must be unique, repeated: {', '.join(repeated)}")
    return value
