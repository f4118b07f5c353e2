"""The DingTalk robot fake, run as a real process on loopback and driven over HTTP."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from obsctl.relay.signing import sign, signature
from obsctl.stack.fakes.dingtalk_verify import SignCheck, verify
from obsctl.stack.fakes.launcher import RunningFake, start_fake

MODULE = "obsctl.stack.fakes.dingtalk"
SECRET = "SEC0f3c9a7e21d84b6aa1e2f4c5d6b7a8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f"
ROBOTS = {
    "tok-signed": {"secret": SECRET, "keywords": [], "rate_limit_per_minute": 20},
    "tok-keyword": {"secret": None, "keywords": ["告警", "alert"]},
    "tok-plain": {},
    "tok-limited": {"rate_limit_per_minute": 20},
}
TEXT = {"msgtype": "text", "text": {"content": "db down"}}
MARKDOWN = {
    "msgtype": "markdown",
    "markdown": {"title": "[FIRING] MySQLDown", "text": "### MySQLDown\n> since 10:00"},
    "at": {"atMobiles": ["13800000000"], "isAtAll": False},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("dingtalk")
    robots = directory / "robots.json"
    robots.write_text(json.dumps(ROBOTS), encoding="utf-8")
    return robots, directory / "store" / "messages.jsonl"


@pytest.fixture(scope="module")
def dingtalk(files: tuple[Path, Path]) -> Iterator[RunningFake]:
    robots, store = files
    fake = start_fake(MODULE, ["--robots", str(robots), "--store", str(store)])
    yield fake
    fake.close()


@pytest.fixture
def store_file(files: tuple[Path, Path]) -> Path:
    return files[1]


@pytest.fixture
def client(dingtalk: RunningFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dingtalk.base_url, timeout=5.0) as http:
        http.delete("/_messages").raise_for_status()
        yield http
        http.put("/_control", json={"mode": "ok"}).raise_for_status()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _signed_url(token: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = _now_ms() if timestamp is None else timestamp
    return f"/robot/send?access_token={token}&timestamp={timestamp}&sign={sign(secret, timestamp)}"


def _post(client: httpx.Client, url: str, body: Any = TEXT) -> dict[str, Any]:
    response = client.post(url, json=body)
    assert response.status_code == 200, "DingTalk answers protocol errors with HTTP 200"
    answer: dict[str, Any] = response.json()
    return answer


def _messages(client: httpx.Client, **filters: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = client.get("/_messages", params=filters).json()["messages"]
    return messages


def _store_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- signing -------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_timestamp_newline_secret() -> None:
    # Worked example, computed independently with `openssl dgst -sha256 -hmac ... -binary | base64`.
    assert signature("SECabc", 1_700_000_000_000) == "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
    assert sign("SECabc", 1_700_000_000_000) == "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D"
    # The fake's own verifier accepts the same worked example (it shares no code with the signer).
    known = "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM="
    now = 1_700_000_000_000
    assert verify("SECabc", str(now), known, now) is SignCheck.OK


def test_verify_checks_presence_clock_window_and_digest() -> None:
    now = 1_700_000_000_000
    good = signature(SECRET, now)

    assert verify(SECRET, str(now), good, now) is SignCheck.OK
    assert verify(SECRET, str(now), None, now) is SignCheck.MISSING
    assert verify(SECRET, None, good, now) is SignCheck.MISSING
    assert verify(SECRET, str(now), good, now + 3_600_001) is SignCheck.BAD_TIMESTAMP
    assert verify(SECRET, str(now), good, now + 3_600_000) is SignCheck.OK
    assert verify(SECRET, "17e11", good, now) is SignCheck.BAD_TIMESTAMP
    assert verify(SECRET, str(now), signature("SECother", now), now) is SignCheck.MISMATCH
    assert verify(SECRET, str(now), "ü" + good, now) is SignCheck.MISMATCH


# --- signed robots -------------------------------------------------------------------------


def test_good_signature_is_accepted_and_stored(client: httpx.Client, store_file: Path) -> None:
    answer = _post(client, _signed_url("tok-signed"), MARKDOWN)

    assert answer == {"errcode": 0, "errmsg": "ok"}
    [stored] = _messages(client, token="tok-signed", accepted="true")
    assert stored["body"] == MARKDOWN
    assert stored["at"] == {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": False}
    assert (stored["errcode"], stored["errmsg"], stored["fault"]) == (0, "ok", None)
    assert _store_lines(store_file) == [stored]


@pytest.mark.parametrize(
    ("url", "errmsg"),
    [
        (_signed_url("tok-signed", secret="SECwrong"), "sign not match"),
        ("/robot/send?access_token=tok-signed", "sign not match"),
        (f"/robot/send?access_token=tok-signed&timestamp={_now_ms()}", "sign not match"),
        ("/robot/send?access_token=tok-signed&sign=abc", "sign not match"),
        (_signed_url("tok-signed", timestamp=_now_ms() - 3_700_000), "invalid timestamp"),
        (_signed_url("tok-signed", timestamp=_now_ms() + 7_200_000), "invalid timestamp"),
    ],
    ids=["bad-sign", "no-sign-no-timestamp", "no-sign", "no-timestamp", "stale", "future"],
)
def test_bad_signature_is_rejected_and_not_accepted(
    client: httpx.Client, url: str, errmsg: str
) -> None:
    answer = _post(client, url)

    assert answer == {"errcode": 310000, "errmsg": errmsg}
    assert _messages(client, token="tok-signed", accepted="true") == []
    [rejected] = _messages(client, token="tok-signed", accepted="false")
    assert rejected["errcode"] == 310000


def test_signature_sent_without_url_encoding_is_rejected(client: httpx.Client) -> None:
    # A raw base64 "+" reaches the server as a space, exactly as with the real service.
    timestamp = next(t for t in range(_now_ms(), _now_ms() + 1000) if "+" in signature(SECRET, t))
    url = f"/robot/send?access_token=tok-signed&timestamp={timestamp}"
    url += f"&sign={signature(SECRET, timestamp)}"

    assert _post(client, url)["errcode"] == 310000


# --- tokens and keywords -------------------------------------------------------------------


def test_unknown_token_is_rejected(client: httpx.Client) -> None:
    answer = _post(client, "/robot/send?access_token=tok-nobody")

    assert answer == {"errcode": 300001, "errmsg": "token is not exist"}
    [recorded] = _messages(client, token="tok-nobody")
    assert recorded["accepted"] is False


def test_missing_token_is_a_missing_parameter(client: httpx.Client) -> None:
    assert _post(client, "/robot/send") == {"errcode": 40035, "errmsg": "缺少参数 access_token"}


def test_keyword_robot_rejects_text_without_a_keyword(client: httpx.Client) -> None:
    answer = _post(client, "/robot/send?access_token=tok-keyword", TEXT)

    assert answer == {"errcode": 310000, "errmsg": "keywords not in content"}
    assert _messages(client, token="tok-keyword", accepted="true") == []


@pytest.mark.parametrize(
    "body",
    [
        {"msgtype": "text", "text": {"content": "数据库告警: db down"}},
        {"msgtype": "markdown", "markdown": {"title": "alert", "text": "db down"}},
        {
            "msgtype": "actionCard",
            "actionCard": {
                "title": "db",
                "text": "down",
                "btns": [{"title": "open alert", "actionURL": "https://grafana.local/d/db"}],
            },
        },
    ],
    ids=["text", "markdown-title", "actioncard-button"],
)
def test_keyword_robot_accepts_a_keyword_anywhere_visible(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    assert _post(client, "/robot/send?access_token=tok-keyword", body)["errcode"] == 0


# --- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "errcode", "errmsg"),
    [
        ({"text": {"content": "x"}}, 40035, "缺少参数 msgtype"),
        ({"msgtype": "image", "image": {}}, 400105, "不支持的消息类型"),
        ({"msgtype": "text"}, 40035, "缺少参数 text"),
        ({"msgtype": "text", "text": {"content": ""}}, 40035, "缺少参数 text->content"),
        (
            {"msgtype": "markdown", "markdown": {"text": "x"}},
            400402,
            "miss param : markdown->title",
        ),
        (
            {"msgtype": "markdown", "markdown": {"title": "x"}},
            400403,
            "miss param : markdown->text",
        ),
        (
            {"msgtype": "link", "link": {"title": "t", "text": "x"}},
            40035,
            "缺少参数 link->messageUrl",
        ),
        (
            {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x"}},
            40035,
            "缺少参数 actionCard->singleTitle",
        ),
        ({"msgtype": "feedCard", "feedCard": {"links": []}}, 40035, "缺少参数 feedCard->links"),
        ({**TEXT, "at": {"atMobiles": "13800000000"}}, 40035, "缺少参数 at->atMobiles"),
        ({**TEXT, "at": {"isAtAll": "yes"}}, 40035, "缺少参数 at->isAtAll"),
        ([TEXT], 40035, "缺少参数 json"),
    ],
)
def test_invalid_body_is_rejected_with_dingtalk_errcode(
    client: httpx.Client, body: Any, errcode: int, errmsg: str
) -> None:
    answer = _post(client, "/robot/send?access_token=tok-plain", body)

    assert answer == {"errcode": errcode, "errmsg": errmsg}
    [recorded] = _messages(client, token="tok-plain")
    assert (recorded["accepted"], recorded["body"]) == (False, body)


def test_unparsable_body_is_rejected_and_recorded_raw(client: httpx.Client) -> None:
    response = client.post(
        "/robot/send?access_token=tok-plain",
        content=b'{"msgtype": "text", ',
        headers={"content-type": "application/json"},
    )

    assert response.json() == {"errcode": 40035, "errmsg": "缺少参数 json"}
    assert _messages(client, token="tok-plain")[0]["body"] == '{"msgtype": "text", '


def test_wrong_method_and_content_type_are_rejected(client: httpx.Client) -> None:
    got = client.get("/robot/send?access_token=tok-plain").json()
    form = client.post("/robot/send?access_token=tok-plain", data={"msgtype": "text"}).json()

    assert got == {"errcode": 43002, "errmsg": "需要POST请求"}
    assert form["errcode"] == 43004


def _text_of_size(total_bytes: int) -> bytes:
    empty = json.dumps({"msgtype": "text", "text": {"content": ""}}).encode()
    return json.dumps(
        {"msgtype": "text", "text": {"content": "x" * (total_bytes - len(empty))}}
    ).encode()


def test_body_over_20000_bytes_is_too_long_but_20000_is_fine(client: httpx.Client) -> None:
    url = "/robot/send?access_token=tok-plain"
    headers = {"content-type": "application/json"}

    at_limit = client.post(url, content=_text_of_size(20_000), headers=headers).json()
    over = client.post(url, content=_text_of_size(20_001), headers=headers).json()

    assert at_limit == {"errcode": 0, "errmsg": "ok"}
    assert over == {"errcode": 460101, "errmsg": "message too long, exceed 20000 bytes"}
    assert len(_messages(client, token="tok-plain", accepted="true")) == 1


# --- rate limit ----------------------------------------------------------------------------


def test_twenty_first_message_in_a_minute_is_throttled_and_not_stored(client: httpx.Client) -> None:
    url = "/robot/send?access_token=tok-limited"

    answers = [_post(client, url)["errcode"] for _ in range(21)]

    assert answers == [0] * 20 + [410100]
    assert len(_messages(client, token="tok-limited", accepted="true")) == 20
    [throttled] = _messages(client, token="tok-limited", accepted="false")
    assert throttled["errmsg"] == "send too fast, exceed 20 times per minute"
    assert _post(client, "/robot/send?access_token=tok-plain")["errcode"] == 0


# --- fault switch --------------------------------------------------------------------------


def test_http_500_fault_applies_to_the_next_n_requests_only(client: httpx.Client) -> None:
    switched = client.put("/_control", json={"mode": "http_500", "count": 2}).json()
    url = "/robot/send?access_token=tok-plain"

    statuses = [client.post(url, json=TEXT).status_code for _ in range(3)]

    assert switched == {"mode": "http_500", "count": 2}
    assert statuses == [500, 500, 200]
    assert client.get("/_control").json() == {"mode": "ok", "count": None}
    recorded = _messages(client, token="tok-plain")
    assert [(m["fault"], m["accepted"]) for m in recorded] == [
        ("http_500", False),
        ("http_500", False),
        (None, True),
    ]


def test_rate_limited_fault_answers_410100(client: httpx.Client) -> None:
    client.put("/_control", json={"mode": "rate_limited", "count": 1}).raise_for_status()
    url = "/robot/send?access_token=tok-plain"

    first, second = _post(client, url), _post(client, url)

    assert first["errcode"] == 410100
    assert second["errcode"] == 0


def test_fault_without_count_lasts_until_changed(client: httpx.Client) -> None:
    client.put("/_control", json={"mode": "http_500", "count": None}).raise_for_status()
    url = "/robot/send?access_token=tok-plain"

    statuses = [client.post(url, json=TEXT).status_code for _ in range(4)]
    client.put("/_control", json={"mode": "ok"}).raise_for_status()

    assert statuses == [500] * 4
    assert client.post(url, json=TEXT).status_code == 200


def test_timeout_fault_hangs_once_then_answers(client: httpx.Client) -> None:
    client.put("/_control", json={"mode": "timeout", "count": 1}).raise_for_status()
    url = "/robot/send?access_token=tok-plain"

    with pytest.raises(httpx.ReadTimeout):
        client.post(url, json=TEXT, timeout=0.3)
    started = time.monotonic()
    answer = _post(client, url)

    assert answer["errcode"] == 0
    assert time.monotonic() - started < 0.2
    assert [m["fault"] for m in _messages(client, token="tok-plain")] == ["timeout", None]


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"mode": "flaky"}, "mode"),
        ({"count": 2}, "mode"),
        ({"mode": "http_500", "count": 0}, "count"),
        ({"mode": "http_500", "count": "2"}, "count"),
        ({"mode": "http_500", "times": 2}, "times"),
    ],
)
def test_invalid_fault_switch_is_refused(
    client: httpx.Client, update: dict[str, Any], field: str
) -> None:
    response = client.put("/_control", json=update)

    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{field}:")
    assert client.get("/_control").json() == {"mode": "ok", "count": None}


# --- message store -------------------------------------------------------------------------


def test_store_file_holds_every_request_as_one_json_line(
    client: httpx.Client, store_file: Path
) -> None:
    _post(client, _signed_url("tok-signed"), MARKDOWN)
    _post(client, "/robot/send?access_token=tok-nobody")
    _post(client, "/robot/send?access_token=tok-keyword")

    lines = _store_lines(store_file)

    assert [(line["token"], line["accepted"], line["errcode"]) for line in lines] == [
        ("tok-signed", True, 0),
        ("tok-nobody", False, 300001),
        ("tok-keyword", False, 310000),
    ]
    assert set(lines[0]) == {
        "received_at",
        "token",
        "accepted",
        "errcode",
        "errmsg",
        "fault",
        "body",
        "at",
    }
    assert lines[0]["received_at"].endswith("+00:00")
    assert lines == _messages(client)
    assert SECRET not in store_file.read_text(encoding="utf-8")


def test_messages_filter_rejects_a_bad_accepted_flag(client: httpx.Client) -> None:
    assert client.get("/_messages", params={"accepted": "yes"}).status_code == 400


def test_delete_clears_memory_and_truncates_the_file(
    client: httpx.Client, store_file: Path
) -> None:
    _post(client, "/robot/send?access_token=tok-plain")

    client.delete("/_messages").raise_for_status()

    assert _messages(client) == []
    assert store_file.read_text(encoding="utf-8") == ""
    _post(client, "/robot/send?access_token=tok-plain")
    assert len(_store_lines(store_file)) == 1


def test_messages_survive_a_restart(tmp_path: Path, files: tuple[Path, Path]) -> None:
    robots, _ = files
    store = tmp_path / "messages.jsonl"
    args = ["--robots", str(robots), "--store", str(store)]
    first = start_fake(MODULE, args)
    try:
        httpx.post(first.base_url + "/robot/send?access_token=tok-plain", json=TEXT)
    finally:
        assert first.stop() == 0
        first.close()

    second = start_fake(MODULE, args)
    try:
        httpx.post(second.base_url + "/robot/send?access_token=tok-plain", json=TEXT)
        messages = httpx.get(second.base_url + "/_messages").json()["messages"]
    finally:
        second.close()

    assert [m["accepted"] for m in messages] == [True, True]
    assert len(_store_lines(store)) == 2


def test_secrets_never_reach_the_log(dingtalk: RunningFake, client: httpx.Client) -> None:
    _post(client, _signed_url("tok-signed"), MARKDOWN)
    _post(client, _signed_url("tok-signed", secret="SECwrong"))

    logs = dingtalk.logs()

    assert "robots (1 signed)" in logs
    assert SECRET not in logs
    assert "tok-signed" not in logs


def test_bad_robots_file_stops_startup_naming_the_problem(tmp_path: Path) -> None:
    robots = tmp_path / "robots.json"
    robots.write_text(json.dumps({"tok-x": {"secret": SECRET, "rate_limit_per_minute": 0}}))
    args = ["--robots", str(robots), "--store", str(tmp_path / "m.jsonl")]

    with pytest.raises(RuntimeError, match="rate_limit_per_minute") as failure:
        start_fake(MODULE, args, timeout=5.0)

    assert "exited with 2" in str(failure.value)
    assert SECRET not in str(failure.value)


def test_one_send_over_the_limit_throttles_the_robot_for_its_throttle_time() -> None:
    from obsctl.stack.fakes.dingtalk.ratelimit import RollingLimiter

    now = [1_000.0]
    limiter = RollingLimiter(window=60, clock=lambda: now[0])

    accepted = [limiter.try_acquire("tok", 2, throttle=600) for _ in range(3)]
    now[0] += 61  # the minute is over, but DingTalk's 10-minute throttle is not
    during = limiter.try_acquire("tok", 2, throttle=600)
    now[0] += 540
    after = limiter.try_acquire("tok", 2, throttle=600)

    assert accepted == [True, True, False]
    assert during is False
    assert after is True
    assert limiter.try_acquire("other", 2, throttle=600), "throttles one robot only"
