"""Reusable constrained types for exporter config: durations like "15s", ports, label values."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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
    return seconds


# Seconds, written in config as "15s" / "250ms"; always > 0.
Duration = Annotated[float, BeforeValidator(parse_duration)]
Port = Annotated[int, Field(ge=1, le=65535)]
# A Prometheus label value we put on series: short and predictable.
LabelValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$")]
