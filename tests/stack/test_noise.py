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
    ],
)
def test_a_bad_knob_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        from_env(env)
