"""The business reader's settings (the exporter config's `business:` section)."""

from __future__ import annotations

import itertools
import math

from pydantic import Field, field_validator

from obsctl.config_types import Duration, LabelValue, no_repeats, timeout_within_interval
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.business_sql import BusinessTables

DEFAULT_FEATURES = ("matting", "outfit", "faceswap", "outpaint")
# AI image tasks take seconds to minutes: matting ~1-5 s, faceswap/outpaint 10-60 s, and a
# provider backlog can push them past 5 min; 600 s is the platform's give-up point.
DEFAULT_LATENCY_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class BusinessConfig(StrictModel):
    """Settings of the business-metrics reader."""

    interval: Duration = 15.0
    timeout: Duration = 5.0
    # How far back each run re-reads: longer than any platform transaction stays open between
    # stamping updated_at and committing (the platform commits within milliseconds).
    overlap: Duration = 120.0
    quota_interval: Duration = 60.0
    features: list[LabelValue] = Field(default_factory=lambda: list(DEFAULT_FEATURES), min_length=1)
    providers: list[LabelValue] = Field(default_factory=list)
    batch_size: int = Field(default=5000, ge=100, le=100_000)
    latency_buckets: list[float] = Field(
        default_factory=lambda: list(DEFAULT_LATENCY_BUCKETS), min_length=1
    )
    target: LabelValue = "platform"
    tables: BusinessTables = Field(default_factory=BusinessTables)

    _timeout_fits_interval = field_validator("timeout")(timeout_within_interval)

    _unique = field_validator("features", "providers")(no_repeats)

    @field_validator("latency_buckets")
    @classmethod
    def _buckets_increase(cls, value: list[float]) -> list[float]:
        if any(not math.isfinite(b) or b <= 0 for b in value):
            raise ValueError("latency buckets must be positive, finite numbers of seconds")
        if any(later <= earlier for earlier, later in itertools.pairwise(value)):
            raise ValueError("latency buckets must be strictly increasing")
        return value
