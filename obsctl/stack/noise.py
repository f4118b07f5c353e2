"""The realistic noise of the local stack's healthy workload: its knobs and their defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

# `OBSCTL_STACK_NOISE=off` starts a stack whose healthy workload has no noise at all.
NOISE_SWITCH_ENV = "OBSCTL_STACK_NOISE"


# Each knob's range: the same bounds the provider fake and the demo platform's config check.
BOUNDS: dict[str, tuple[float, float]] = {
    "provider_jitter_median_ms": (0, 10_000),
    "provider_jitter_sigma": (0.0, 2.0),
    "sporadic_errors_per_minute": (0.0, 600.0),
    "burst_every_seconds": (0, 86_400),
    "burst_seconds": (0, 3_600),
    "burst_factor": (1.0, 50.0),
}


@dataclass(frozen=True)
class StackNoise:
    """What a healthy platform shows anyway; every field can be overridden by its env var."""

    # Extra latency of every provider answer (heartbeats too): lognormal around the median.
    # With 20 ms and sigma 0.5, one heartbeat in ~500,000 is slower than the 200 ms "degraded"
    # mark; ProviderDown needs no answer at all within the 2 s timeout.
    provider_jitter_median_ms: int = 20
    provider_jitter_sigma: float = 0.5
    # Single 500s on the API, spaced 0.5x..1.5x of 60 s / rate apart (never a clump): about
    # one a minute is ~0.2 % of the ~490 requests a minute of the default 4 tasks/s, well
    # below ApiHighErrorRate's 1 % and the 0.6 % of the slow error-budget burn.
    sporadic_errors_per_minute: float = 1.0
    # Bursts of task creation through the API: for `burst_seconds` the visit rate is
    # `burst_factor` times the steady one, every 0.5x..1.5x of `burst_every_seconds`.
    burst_every_seconds: int = 300
    burst_seconds: int = 15
    burst_factor: float = 3.0

    def __post_init__(self) -> None:
        for knob in fields(self):
            low, high = BOUNDS[knob.name]
            value = getattr(self, knob.name)
            if not low <= value <= high:  # also refuses NaN
                expected = f"expected a value from {low:g} to {high:g}"
                raise ValueError(f"{env_name(knob.name)}: {expected}, got {value:g}")

    def provider_args(self) -> list[str]:
        """The provider fake's command-line options for its jitter."""
        return [
            "--jitter-median-ms",
            str(self.provider_jitter_median_ms),
            "--jitter-sigma",
            str(self.provider_jitter_sigma),
        ]

    def demo_env(self) -> dict[str, str]:
        """The demo platform's DEMO_NOISE_* variables."""
        return {
            "DEMO_NOISE_SPORADIC_ERRORS_PER_MINUTE": str(self.sporadic_errors_per_minute),
            "DEMO_NOISE_BURST_EVERY_SECONDS": str(self.burst_every_seconds),
            "DEMO_NOISE_BURST_SECONDS": str(self.burst_seconds),
            "DEMO_NOISE_BURST_FACTOR": str(self.burst_factor),
        }


QUIET = StackNoise(
    provider_jitter_median_ms=0,
    sporadic_errors_per_minute=0.0,
    burst_every_seconds=0,
)


def env_name(field_name: str) -> str:
    """The variable that overrides one knob: burst_factor -> OBSCTL_NOISE_BURST_FACTOR."""
    return f"OBSCTL_NOISE_{field_name.upper()}"


def from_env(environ: Mapping[str, str] = os.environ) -> StackNoise:
    """The defaults, or none with OBSCTL_STACK_NOISE=off, then each OBSCTL_NOISE_* override."""
    switch = environ.get(NOISE_SWITCH_ENV, "on").strip().lower()
    if switch not in ("on", "off"):
        raise ValueError(f"{NOISE_SWITCH_ENV}: expected 'on' or 'off', got {switch!r}")
    noise = QUIET if switch == "off" else StackNoise()
    values: dict[str, int | float] = asdict(noise)
    for knob in fields(StackNoise):
        raw = environ.get(env_name(knob.name))
        if raw is None or not raw.strip():
            continue
        kind = int if knob.type == "int" else float
        try:
            values[knob.name] = kind(raw)
        except ValueError:
            raise ValueError(
                f"{env_name(knob.name)}: expected {'an integer' if kind is int else 'a number'}"
                f", got {raw!r}"
            ) from None
    return StackNoise(**values)  # type: ignore[arg-type]
