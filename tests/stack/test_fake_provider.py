"""The AI provider fake, run as a real process on loopback and driven over HTTP."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from obsctl.stack.fakes.launcher import RunningFake, start_fake

MODULE = "obsctl.stack.fakes.provider"
DEFAULTS = {
    "mode": "ok",
    "latency_ms": 500,
    "failure_rate": 0.05,
    "task_latency_ms": 800,
    "jitter_median_ms": 0,
    "jitter_sigma": 0.5,
}
TASK = {"feature": "matting", "input_url": "http://cos.local/in/1.png", "client_task_id": "t-1"}
API_KEY = "sk-fake-acme-6f1c2d9e8b7a"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningFake]:
    fake = start_fake(MODULE, ["--name", "acme", "--seed", "7", "--api-key", API_KEY])
    yield fake
    fake.close()


@pytest.fixture
def client(provider: RunningFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, timeout=5.0, headers=AUTH) as http:
        yield http
        http.put("/_control", json=DEFAULTS).raise_for_status()


@pytest.fixture
def anonymous(provider: RunningFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=provider.base_url, timeout=5.0) as http:
        yield http


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer sk-wrong"}, {"Authorization": API_KEY}, {"X-API-Key": "x"}],
    ids=["no-key", "wrong-key", "no-bearer-scheme", "wrong-x-api-key"],
)
def test_every_v1_call_without_the_key_is_401(
    anonymous: httpx.Client, headers: dict[str, str]
) -> None:
    answers = [
        anonymous.get("/v1/heartbeat", headers=headers),
        anonymous.post("/v1/tasks", json=TASK, headers=headers),
        anonymous.get("/v1/tasks/acme-doesnotexist", headers=headers),
    ]

    for response in answers:
        assert response.status_code == 401, response.request.url
        assert response.json()["error"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_the_key_is_taken_as_bearer_or_x_api_key(anonymous: httpx.Client) -> None:
    bearer = anonymous.get("/v1/heartbeat", headers={"Authorization": f"bearer {API_KEY}"})
    x_api_key = anonymous.get("/v1/heartbeat", headers={"X-API-Key": API_KEY})

    assert (bearer.status_code, x_api_key.status_code) == (200, 200)


def test_control_needs_no_key_and_refusals_never_log_a_key(
    provider: RunningFake, anonymous: httpx.Client
) -> None:
    anonymous.get("/v1/heartbeat", headers={"Authorization": "Bearer sk-presented-wrong-key"})

    assert anonymous.get("/_control").status_code == 200
    logs = provider.logs()
    assert "refused GET /v1/heartbeat: a wrong key" in logs
    assert "sk-presented-wrong-key" not in logs and API_KEY not in logs


def test_the_fake_refuses_to_start_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROVIDER_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", MODULE, "--name", "acme", "--port", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )

    assert result.returncode == 2
    assert "an API key is required: set PROVIDER_API_KEY or pass --api-key" in result.stderr


def _configure(client: httpx.Client, **changes: Any) -> None:
    client.put("/_control", json=changes).raise_for_status()


def _wait_until_finished(client: httpx.Client, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}").json()
        if task["status"] != "processing":
            return task
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still processing")


def test_heartbeat_names_the_provider(client: httpx.Client) -> None:
    response = client.get("/v1/heartbeat")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "provider": "acme"}


def test_task_is_processing_then_succeeds_with_a_fetchable_result(client: httpx.Client) -> None:
    _configure(client, failure_rate=0.0, task_latency_ms=300)

    created = client.post("/v1/tasks", json=TASK)
    task_id = created.json()["task_id"]
    first_look = client.get(f"/v1/tasks/{task_id}").json()
    finished = _wait_until_finished(client, task_id)

    assert created.status_code == 202
    assert created.json()["status"] == "processing"
    assert task_id.startswith("acme-") and len(task_id) == len("acme-") + 32
    assert first_look == {"task_id": task_id, "status": "processing"}
    assert finished["status"] == "succeeded"
    assert "error" not in finished
    # Like a real provider's result link, the image needs no key.
    image = httpx.get(finished["result_url"], timeout=5.0)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_task_fails_with_an_error_when_failure_rate_is_one(client: httpx.Client) -> None:
    _configure(client, failure_rate=1.0, task_latency_ms=50)

    task_id = client.post("/v1/tasks", json=TASK).json()["task_id"]
    finished = _wait_until_finished(client, task_id)

    assert finished["status"] == "failed"
    assert finished["error"]
    assert "result_url" not in finished
    assert client.get(f"/v1/results/{task_id}.png").status_code == 404


def test_task_duration_follows_task_latency(client: httpx.Client) -> None:
    _configure(client, failure_rate=0.0, task_latency_ms=400)

    started = time.monotonic()
    task_id = client.post("/v1/tasks", json=TASK).json()["task_id"]
    _wait_until_finished(client, task_id)
    elapsed = time.monotonic() - started

    # Lognormal around 400 ms: far above the 50 ms floor, far below a second or two.
    assert 0.1 < elapsed < 2.0


def test_unknown_task_is_not_found(client: httpx.Client) -> None:
    response = client.get("/v1/tasks/acme-doesnotexist")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b'{"input_url": "http://x/1.png", "client_task_id": "t"}', "feature"),
        (b'{"feature": "matting", "input_url": 7, "client_task_id": "t"}', "input_url"),
        (
            b'{"feature": "matting", "input_url": "http://x/1.png", "client_task_id": ""}',
            "client_task_id",
        ),
    ],
)
def test_bad_task_body_is_rejected_naming_the_field(
    client: httpx.Client, body: bytes, field: str
) -> None:
    response = client.post("/v1/tasks", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")


def test_slow_mode_delays_every_answer(client: httpx.Client) -> None:
    _configure(client, mode="slow", latency_ms=400)

    started = time.monotonic()
    response = client.get("/v1/heartbeat")
    elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert 0.4 <= elapsed < 1.5


def test_jitter_spreads_ok_answers_around_its_median(client: httpx.Client) -> None:
    _configure(client, jitter_median_ms=60, jitter_sigma=0.5)

    elapsed = []
    for _ in range(15):
        started = time.monotonic()
        assert client.get("/v1/heartbeat").status_code == 200
        elapsed.append(time.monotonic() - started)

    elapsed.sort()
    # Lognormal around 60 ms: the median answer is near it, and the answers differ.
    assert 0.03 <= elapsed[7] < 0.3, elapsed
    assert elapsed[-1] - elapsed[0] > 0.01, elapsed


def test_jitter_median_is_validated(client: httpx.Client) -> None:
    response = client.put("/_control", json={"jitter_median_ms": -1})

    assert response.status_code == 400 and "jitter_median_ms" in response.json()["error"]


def test_error_mode_answers_500(client: httpx.Client) -> None:
    _configure(client, mode="error")

    heartbeat = client.get("/v1/heartbeat")
    submit = client.post("/v1/tasks", json=TASK)

    assert (heartbeat.status_code, heartbeat.json()) == (500, {"error": "internal"})
    assert submit.status_code == 500


def test_submit_error_mode_fails_only_new_tasks(client: httpx.Client) -> None:
    _configure(client, failure_rate=0.0, task_latency_ms=300)
    accepted = client.post("/v1/tasks", json=TASK).json()["task_id"]
    _configure(client, mode="submit_error")

    submit = client.post("/v1/tasks", json=TASK)
    heartbeat = client.get("/v1/heartbeat")
    finished = _wait_until_finished(client, accepted)

    assert (submit.status_code, submit.json()) == (500, {"error": "internal"})
    assert heartbeat.status_code == 200
    assert finished["status"] == "succeeded"


def test_task_failure_mode_accepts_tasks_that_then_fail(client: httpx.Client) -> None:
    _configure(client, failure_rate=0.0, task_latency_ms=100, mode="task_failure")

    submit = client.post("/v1/tasks", json=TASK)
    heartbeat = client.get("/v1/heartbeat")
    finished = _wait_until_finished(client, submit.json()["task_id"])
    _configure(client, mode="ok")
    after = _wait_until_finished(client, client.post("/v1/tasks", json=TASK).json()["task_id"])

    assert submit.status_code == 202 and heartbeat.status_code == 200
    assert (finished["status"], finished["error"]) == ("failed", "model_error")
    assert after["status"] == "succeeded"  # back to the control's failure_rate (0 here)


def test_down_mode_answers_503(client: httpx.Client) -> None:
    _configure(client, mode="down")

    response = client.get("/v1/heartbeat")

    assert (response.status_code, response.json()) == (503, {"error": "unavailable"})


def test_timeout_mode_hangs_while_control_still_answers(client: httpx.Client) -> None:
    _configure(client, mode="timeout")

    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/heartbeat", timeout=0.3)
    started = time.monotonic()
    control = client.get("/_control", timeout=1.0)

    assert control.json()["mode"] == "timeout"
    assert time.monotonic() - started < 0.2


def test_modes_leave_control_alone(client: httpx.Client) -> None:
    _configure(client, mode="down")

    response = client.get("/_control")

    assert response.status_code == 200
    assert response.json() == {"provider": "acme", **DEFAULTS, "mode": "down"}


def test_control_update_is_partial_and_returns_the_new_state(client: httpx.Client) -> None:
    response = client.put("/_control", json={"latency_ms": 0, "failure_rate": 1})

    assert response.status_code == 200
    assert response.json() == {
        "provider": "acme",
        **DEFAULTS,
        "latency_ms": 0,
        "failure_rate": 1.0,
    }


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"mode": "broken"}, "mode"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"latency_ms": 120_001}, "latency_ms"),
        ({"latency_ms": "5"}, "latency_ms"),
        ({"latency_ms": True}, "latency_ms"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"task_latency_ms": 0}, "task_latency_ms"),
        ({"task_latency_ms": 600_001}, "task_latency_ms"),
        ({"mode": None}, "mode"),
        ({"colour": "red"}, "colour"),
        ({"mode": "down", "colour": "red"}, "colour"),
    ],
)
def test_invalid_control_update_is_refused_and_changes_nothing(
    client: httpx.Client, update: dict[str, Any], field: str
) -> None:
    response = client.put("/_control", json=update)

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")
    assert client.get("/_control").json() == {"provider": "acme", **DEFAULTS}


def test_control_body_must_be_a_json_object(client: httpx.Client) -> None:
    assert client.put("/_control", content=b"mode=down").status_code == 400
    assert client.put("/_control", json=["mode", "down"]).status_code == 400


def test_each_control_change_is_logged(provider: RunningFake, client: httpx.Client) -> None:
    _configure(client, mode="slow", latency_ms=250)

    lines = [line for line in provider.logs().splitlines() if "control changed" in line]

    assert "mode 'ok' -> 'slow'" in lines[-1]
    assert "latency_ms 500 -> 250" in lines[-1]


def test_sigterm_exits_cleanly_even_with_a_hanging_request() -> None:
    fake = start_fake(MODULE, ["--name", "other", "--api-key", API_KEY])
    try:
        httpx.put(fake.base_url + "/_control", json={"mode": "timeout"}).raise_for_status()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(fake.base_url + "/v1/heartbeat", headers=AUTH, timeout=0.3)

        started = time.monotonic()
        returncode = fake.stop()

        assert returncode == 0
        assert time.monotonic() - started < 3.0
    finally:
        fake.close()
