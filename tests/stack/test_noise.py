"""The stack's noise knobs: defaults, the off switch, overrides and their errors."""

import pytest

from obsctl.stack.noise import QUIET, StackNoise, from_env


def test_the_stack_is_noisy_by_default() -> None:
    noise = from_env({})

    assert noise == StackNoise()
    assert noise.provider_jitter_median_ms > 0 and noise.sporadic_errors_per_minute > 0
    assert noise.demo_env()["DEMO_NOISE_BURST_EVERY_SECONDS"] == "300"


def test_off_silences_everything_and_an_override_still_applies() -> None:
    assert from_env({"OBSCTL_STACK_NOISE": "off"}) == QUIET
    noise = from_env({"OBSCTL_STACK_NOISE": "off", "OBSCTL_NOISE_BURST_FACTOR": "5"})

    assert noise.burst_factor == 5.0 and noise.sporadic_errors_per_minute == 0
    assert noise.provider_args() == ["--jitter-median-ms", "0", "--jitter-sigma", "0.5"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OBSCTL_STACK_NOISE": "loud"}, "OBSCTL_STACK_NOISE: expected 'on' or 'off'"),
        ({"OBSCTL_NOISE_BURST_SECONDS": "1.5"}, "OBSCTL_NOISE_BURST_SECONDS: expected an integer"),
        ({"OBSCTL_NOISE_BURST_FACTOR": "x"}, "OBSCTL_NOISE_BURST_FACTOR: expected a number"),
        (
            {"OBSCTL_NOISE_SPORADIC_ERRORS_PER_MINUTE": "-1"},
            "OBSCTL_NOISE_SPORADIC_ERRORS_PER_MINUTE: expected a value from 0 to 600, got -1",
        ),
        (
            {"OBSCTL_NOISE_BURST_FACTOR": "nan"},
            "OBSCTL_NOISE_BURST_FACTOR: expected a value from 1 to 50, got nan",
        ),
        (
            {"OBSCTL_NOISE_PROVIDER_JITTER_MEDIAN_MS": "20000"},
            "OBSCTL_NOISE_PROVIDER_JITTER_MEDIAN_MS: expected a value from 0 to 10000",
        ),
    ],
)
def test_a_bad_knob_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_env(env)
