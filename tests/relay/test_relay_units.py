"""The relay's parts without a network: config, payload, rendering, packing and pacing."""

from __future__ import annotations

import json
import re
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from obsctl.relay import alertmanager
from obsctl.relay.alertmanager import Alert, PayloadError
from obsctl.relay.compose import Composer, Entry
from obsctl.relay.config import ConfigError, RenderConfig, TargetConfig, load
from obsctl.relay.pacing import SendBudget
from obsctl.relay.render import Renderer, format_duration

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "alertmanager" / "relay.yaml"
TEMPLATES = REPO / "alertmanager" / "templates"
NOW = datetime(2025, 1, 1, 10, 5, 30, tzinfo=UTC)
ENV = {
    "OBSCTL_RELAY_TOKEN": "tok-3e1d",
    "OBSCTL_RELAY_CLAIM_KEY": "claim-key-of-the-unit-tests",
    "OBSCTL_RELAY_SMS_SECRET_ID": "AKIDunittests",
    "OBSCTL_RELAY_SMS_SECRET_KEY": "sms-key-of-the-tests",
    "OBSCTL_DINGTALK_ONCALL_URL": "https://oapi.dingtalk.com/robot/send?access_token=AT-oncall",
    "OBSCTL_DINGTALK_ONCALL_SECRET": "SEC-oncall-secret",
    **{
        f"OBSCTL_DINGTALK_TEAM_{team}_{key}": value
        for team in ("PLATFORM", "AI", "SRE")
        for key, value in (
            ("URL", f"https://oapi.dingtalk.com/robot/send?access_token=AT-{team.lower()}"),
            ("SECRET", f"SEC-{team.lower()}-secret"),
        )
    },
    "OBSCTL_DINGTALK_HEARTBEAT_URL": "https://oapi.dingtalk.com/robot/send?access_token=AT-hb",
    "OBSCTL_DINGTALK_HEARTBEAT_SECRET": "",
    "OBSCTL_RELAY_LINK_PREFIXES": "http://prometheus.example:9090 http://alertmanager.example:9093",
    "OBSCTL_RELAY_SPOOL_DIR": "/tmp/obsctl-relay-units-spool",
}
TRUSTED = ["https://runbooks.example/", "https://grafana.example", "http://prometheus.example"]


def alert(
    name: str = "ApiHighErrorRate",
    severity: str = "critical",
    status: str = "firing",
    description: str = "5xx share is 5.2% over 5m",
    **labels: str,
) -> Alert:
    """An alert shaped like the ones our rules produce."""
    return Alert.model_validate(
        {
            "status": status,
            "labels": {"alertname": name, "severity": severity, "team": "platform", **labels},
            "annotations": {
                "summary": f"{name} summary",
                "description": description,
                "runbook_url": f"https://runbooks.example/{name}",
                "dashboard_url": "https://grafana.example/d/api",
            },
            "startsAt": "2025-01-01T10:00:00.123456789Z",
            "endsAt": "2025-01-01T10:03:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example/graph?g0.expr=x",
            "fingerprint": "abc",
        }
    )


def zh(label: str, value: str) -> str:
    """A line of the Chinese template: label, full-width colon, value."""
    return f"- **{label}**\N{FULLWIDTH COLON}{value}"


def renderer(**config: Any) -> Renderer:
    return Renderer(
        RenderConfig.model_validate(
            {
                "templates_dir": TEMPLATES,
                "link_prefixes": [*TRUSTED, "http://am", "http://am:9093"],
                **config,
            }
        )
    )


def composer(language: str = "en-US", max_bytes: int = 20_000, **target: Any) -> Composer:
    config = TargetConfig.model_validate({"url": "http://robot.example/send", **target})
    return Composer(renderer(), config, language, "mention", max_bytes)  # type: ignore[arg-type]


# --- config ----------------------------------------------------------------------------------


def test_shipped_config_loads_from_the_documented_environment() -> None:
    config = load(SHIPPED, ENV)

    assert sorted(config.targets) == [
        "heartbeat", "oncall", "team-ai", "team-platform", "team-sre",
    ]  # fmt: skip
    assert config.listen == "127.0.0.1:18311"
    assert config.render.timezone == "Asia/Shanghai" and config.render.language == "zh-CN"
    assert config.render.templates_dir == TEMPLATES
    oncall = config.targets["oncall"]
    assert oncall.url.get_secret_value() == ENV["OBSCTL_DINGTALK_ONCALL_URL"]
    assert oncall.signed and oncall.mentions.mobiles and oncall.mentions.severities == ["critical"]
    assert not config.targets["heartbeat"].signed
    assert config.targets["heartbeat"].mentions.severities == []
    assert config.webhook.token is not None
    assert config.webhook.token.get_secret_value() == "tok-3e1d"
    assert config.delivery.spool_dir == Path("/tmp/obsctl-relay-units-spool")
    assert config.delivery.rate_limited_backoff == 600, "DingTalk's 10-minute throttle"
    assert config.render.link_prefixes == [
        "http://127.0.0.1:3000",
        "http://prometheus.example:9090",
        "http://alertmanager.example:9093",
    ]
    assert config.targets["team-ai"].mentions.mobiles == [], "warnings page nobody"
    renderer_ = Renderer(config.render)
    renderer_.check(["zh-CN", "en-US"])


def test_listen_comes_from_obsctl_relay_listen() -> None:
    config = load(SHIPPED, {**ENV, "OBSCTL_RELAY_LISTEN": "127.0.0.1:29999"})

    assert config.host_port == ("127.0.0.1", 29999)


def test_missing_environment_is_named_per_key_without_values() -> None:
    env = {k: v for k, v in ENV.items() if "TEAM_AI" not in k}

    with pytest.raises(ConfigError) as caught:
        load(SHIPPED, env)

    assert caught.value.problems == [
        "targets.team-ai.url: environment variable OBSCTL_DINGTALK_TEAM_AI_URL is not set",
        "targets.team-ai.secret: environment variable OBSCTL_DINGTALK_TEAM_AI_SECRET is not set",
    ]


def test_unknown_keys_and_bad_values_say_where_and_never_echo_secrets(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(
        "listen: localhost\n"
        "render: {timezone: Mars/Olympus}\n"
        "webhook: {deliver_timeout: 1s}\n"
        "targets:\n"
        "  oncall: {url: 'ftp://robot?access_token=AT-leak', secret: SEC-leak, colour: red}\n"
        "  Bad Name: {url: 'http://x'}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    text = str(caught.value)
    assert str(path) in text
    assert "listen: Value error, expected host:port" in text
    assert "render.timezone: Value error, unknown time zone 'Mars/Olympus'" in text
    assert "targets.oncall.colour: unknown key" in text
    assert "targets.oncall.url: Value error, expected an http(s) robot URL" in text
    assert "targets.Bad Name" in text
    assert "AT-leak" not in text and "SEC-leak" not in text


def test_the_spool_is_on_by_default_and_an_unusable_one_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text("targets: {team: {url: 'http://robot/send'}}\n", encoding="utf-8")
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")

    default = load(path, {})
    relative = load(path, {"OBSCTL_RELAY_SPOOL_DIR": "state/spool"})
    with pytest.raises(ConfigError) as under_a_file:
        load(path, {"OBSCTL_RELAY_SPOOL_DIR": str(blocker / "spool")})
    with pytest.raises(ConfigError) as read_only:
        load(path, {"OBSCTL_RELAY_SPOOL_DIR": "/proc/obsctl-spool"})

    assert default.delivery.spool_dir == Path("/var/lib/obsctl/relay")
    assert relative.delivery.spool_dir == tmp_path / "state" / "spool"
    assert under_a_file.value.problems == [
        f"delivery.spool_dir: {blocker} is not a directory, so {blocker / 'spool'} cannot be "
        "created"
    ]
    [problem] = read_only.value.problems
    assert problem.startswith("delivery.spool_dir: cannot create /proc/obsctl-spool in /proc")


def test_link_prefixes_must_be_urls_and_a_variable_may_hold_several(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(
        "render: {link_prefixes: ['https://grafana.example/', '${PREFIXES}']}\n"
        "targets: {team: {url: 'http://robot/send'}}\n",
        encoding="utf-8",
    )

    config = load(path, {"PREFIXES": " http://a.example:9090  http://b.example:9093 "})
    with pytest.raises(ConfigError) as caught:
        load(path, {"PREFIXES": "javascript:alert(1)"})

    assert config.render.link_prefixes == [
        "https://grafana.example/", "http://a.example:9090", "http://b.example:9093",
    ]  # fmt: skip
    [problem] = caught.value.problems
    assert "render.link_prefixes: Value error, expected http(s) URL prefixes" in problem


def test_robot_url_without_file_value_points_at_its_variable(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text("targets: {on-call: {secret: x}}\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load(path, {})

    assert caught.value.problems == [
        "targets.on-call.url: required key is missing (set it or OBSCTL_DINGTALK_ON_CALL_URL)"
    ]
    config = load(path, {"OBSCTL_DINGTALK_ON_CALL_URL": "http://robot/send?access_token=a"})
    assert config.targets["on-call"].signed


# --- payload ---------------------------------------------------------------------------------


def test_payload_errors_are_400_for_json_and_422_for_the_format() -> None:
    good = {"version": "4", "status": "firing", "alerts": []}
    with pytest.raises(PayloadError) as not_json:
        alertmanager.parse(b"{nope")
    with pytest.raises(PayloadError) as wrong_version:
        alertmanager.parse(json.dumps({**good, "version": "3"}).encode())
    with pytest.raises(PayloadError) as bad_alert:
        alertmanager.parse(json.dumps({**good, "alerts": [{"status": "burning"}]}).encode())

    assert not_json.value.status == 400 and "not valid JSON" in str(not_json.value)
    assert wrong_version.value.status == 422
    expected = "version: expected \"4\" (the Alertmanager webhook format), found '3'"
    assert str(wrong_version.value) == expected
    assert bad_alert.value.status == 422 and "alerts.0.status" in str(bad_alert.value)
    assert alertmanager.parse(json.dumps(good).encode()).alerts == []


def test_zero_end_time_means_still_firing() -> None:
    assert alert().endsAt is None
    assert alert(status="resolved").endsAt == datetime(2025, 1, 1, 10, 3, tzinfo=UTC)


# --- rendering -------------------------------------------------------------------------------


def test_firing_and_resolved_in_english_with_times_in_shanghai() -> None:
    r = renderer()
    firing = r.view(alert(instance="api:3000", pod="p-1"), "http://am:9093/", "en-US", NOW)
    resolved = r.view(alert("QueueBacklogHigh", "warning", "resolved"), "", "en-US", NOW)

    out = r.render("en-US", [resolved, firing])

    assert out.title == "[FIRING:1, RESOLVED:1] ApiHighErrorRate +1 critical"
    text = out.text
    assert text.index("ApiHighErrorRate · critical · firing") < text.index("QueueBacklogHigh")
    assert "- **Summary**: ApiHighErrorRate summary" in text
    assert "- **Description**: 5xx share is 5.2% over 5m" in text
    assert "- **Labels**: instance=`api:3000`\n" in text  # pod and team are not key labels
    assert "- **Started**: 2025-01-01 18:00:00 UTC+08:00" in text
    assert "- **Firing for**: 5m 29s" in text
    assert "- **Resolved**: 2025-01-01 18:03:00 UTC+08:00" in text
    assert "- **Fired for**: 2m 59s" in text
    assert "[Dashboard](https://grafana.example/d/api)" in text
    assert "[Runbook](https://runbooks.example/ApiHighErrorRate)" in text
    assert firing.silence_url is not None
    base, _, query = firing.silence_url.partition("?filter=")
    assert base == "http://am:9093/#/silences/new"
    assert urllib.parse.unquote(query) == (
        '{alertname="ApiHighErrorRate",instance="api:3000",pod="p-1",'
        'severity="critical",team="platform"}'
    )
    assert f"[Silence]({firing.silence_url})" in text


def test_chinese_message() -> None:
    r = renderer()
    views = [r.view(alert(queue="matting"), "http://am", "zh-CN", NOW)]

    out = r.render("zh-CN", views, more=4, keyword="告警", mobiles=["13800000000"])

    assert out.title == "告警 [告警中:1] ApiHighErrorRate 严重"
    assert out.text.startswith("### 告警 [告警中:1] ApiHighErrorRate 严重\n")
    expected = [
        zh("摘要", "ApiHighErrorRate summary"),
        zh("详情", "5xx share is 5.2% over 5m"),
        zh("标签", "queue=`matting`"),
        zh("开始时间", "2025-01-01 18:00:00 UTC+08:00"),
        zh("已持续", "5分29秒"),
        "[处理手册](https://runbooks.example/ApiHighErrorRate)",
        "还有 4 条告警",
        "@13800000000",
    ]
    for line in expected:
        assert line in out.text
    resolved = r.render("zh-CN", [r.view(alert(status="resolved"), "", "zh-CN", NOW)])
    assert resolved.title == "[已恢复] ApiHighErrorRate 严重"
    assert zh("恢复时间", "2025-01-01 18:03:00 UTC+08:00") in resolved.text
    assert zh("持续了", "2分59秒") in resolved.text


@pytest.mark.parametrize(
    ("seconds", "en", "zh"),
    [
        (0, "0s", "0秒"),
        (59, "59s", "59秒"),
        (3_725, "1h 2m", "1小时2分"),
        (90_061, "1d 1h", "1天1小时"),
    ],
)
def test_durations(seconds: int, en: str, zh: str) -> None:
    assert format_duration(seconds, "en-US") == en
    assert format_duration(seconds, "zh-CN") == zh


# --- packing ---------------------------------------------------------------------------------


def _drain(c: Composer, entries: list[Entry]) -> list[tuple[bytes, int]]:
    messages = []
    while entries:
        message, count = c.compose(entries, NOW)
        messages.append((message.payload, count))
        entries = entries[count:]
    return messages


def test_big_notification_is_split_and_every_alert_appears_once() -> None:
    entries = [
        Entry(alert=alert(f"Alert{i:03d}", description="x" * 600, instance=f"host-{i}"))
        for i in range(120)
    ]

    messages = _drain(composer(), entries)

    assert len(messages) > 2
    assert all(len(payload) <= 20_000 for payload, _ in messages)
    texts = [json.loads(payload)["markdown"]["text"] for payload, _ in messages]
    left = 120 - messages[0][1]
    assert f"… and {left} more alerts follow in the next message" in texts[0]
    assert "more alerts" not in texts[-1]
    everything = "".join(texts)
    assert all(everything.count(f"Alert{i:03d} ·") == 1 for i in range(120))


def test_a_single_giant_alert_is_cut_to_fit_and_marked() -> None:
    entries = [Entry(alert=alert(description="界" * 30_000)), Entry(alert=alert("Small"))]

    message, count = composer("zh-CN").compose(entries, NOW)

    assert count == 1
    assert len(message.payload) <= 20_000
    assert "内容过长" in message.text and "已截断" in message.text
    assert "还有 1 条告警" in message.text


def test_mentions_come_from_config_for_paging_severities_and_from_the_mention_label() -> None:
    c = composer(
        mentions={"mobiles": ["13800000000"], "severities": ["critical"]},
        mentionable=["13900000001", "13900000002", "13900000003"],
    )
    critical = Entry(alert=alert(mention="13900000001, bad!, 13900000002"))
    warning = Entry(alert=alert("Warn", "warning"))
    resolved = Entry(alert=alert(status="resolved", mention="13900000003"))

    assert c.mentions([critical]) == (["13800000000", "13900000001", "13900000002"], False)
    assert c.mentions([warning, resolved]) == ([], False)
    message, _ = c.compose([critical], NOW)
    body = json.loads(message.payload)
    assert body["at"] == {
        "atMobiles": ["13800000000", "13900000001", "13900000002"],
        "isAtAll": False,
    }
    assert all(f"@{m}" in body["markdown"]["text"] for m in body["at"]["atMobiles"])
    at_all = composer(mentions={"at_all": True}, label_mentions=False)
    assert at_all.mentions([critical]) == ([], True)


def test_keyword_is_in_title_and_text() -> None:
    message, _ = composer(keyword="obsctl").compose([Entry(alert=alert())], NOW)

    assert message.title.startswith("obsctl [FIRING:1]")
    assert "obsctl" in message.text


# --- pacing ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_budget_sends_half_at_once_then_spaces_rounds_and_never_exceeds_the_window() -> None:
    clock = Clock()
    budget = SendBudget(20, clock=clock)
    sent: list[float] = []
    immediate = 0
    while clock.now < 1_000 + 600:
        delay = budget.delay()
        if delay > 0:
            clock.now += delay
            continue
        budget.record()
        sent.append(clock.now)
        if clock.now == 1_000.0:
            immediate += 1

    assert immediate == 10
    assert sent[10] - sent[9] == pytest.approx(60 / 11)
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 60]
        assert len(in_window) <= 20
    assert budget.free() == 0 or budget.delay() >= 0


def test_an_exhausted_budget_waits_for_the_oldest_send_plus_margin() -> None:
    clock = Clock()
    budget = SendBudget(2, window=60, margin=1, clock=clock)
    budget.record()
    clock.now += 5
    budget.record()

    assert budget.free() == 0
    assert budget.delay() == pytest.approx(56)
    clock.now += 56
    assert budget.free() == 1


def test_event_times_reach_the_view_in_the_configured_zone() -> None:
    r = Renderer(RenderConfig(templates_dir=TEMPLATES, timezone="UTC"))
    view = r.view(alert(), "", "en-US", NOW + timedelta(hours=25))

    assert view.starts_at == "2025-01-01 10:00:00 UTC+00:00"
    assert view.duration == "1d 1h"


# --- hostile and broken input ----------------------------------------------------------------


def raw_alert(**fields: Any) -> dict[str, Any]:
    base = {
        "status": "firing",
        "labels": {"alertname": "ApiHighErrorRate", "severity": "critical"},
        "annotations": {"summary": "s"},
        "startsAt": "2025-01-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    return {**base, **fields}


def parsed(*alerts: dict[str, Any], **notification: Any) -> alertmanager.Notification:
    body = {"version": "4", "status": "firing", "alerts": list(alerts), **notification}
    return alertmanager.parse(json.dumps(body).encode())


@pytest.mark.parametrize(
    "fields",
    [
        {"startsAt": "9999-12-31T23:59:59Z"},
        {"startsAt": "2026-12-01T10:00:00"},  # no time zone
        {"status": "resolved", "endsAt": "9999-12-31T23:59:59Z"},
        {"startsAt": "not a time"},
        {"startsAt": "0001-01-01T00:00:00Z"},
    ],
)
def test_poison_times_are_normalised_at_intake_and_render(fields: dict[str, Any]) -> None:
    [entry_alert] = parsed(raw_alert(**fields)).alerts
    c = composer("zh-CN")

    message, count = c.compose([Entry(alert=entry_alert), Entry(alert=alert("Next"))], NOW)

    assert count == 2, "the bad alert and the one behind it go out together"
    assert "ApiHighErrorRate" in message.text and "Next" in message.text
    for moment in (entry_alert.startsAt, entry_alert.endsAt):
        assert moment is None or moment.tzinfo is not None


def test_a_bare_time_is_read_as_utc_and_an_impossible_one_is_shown_as_unknown() -> None:
    bare, future = parsed(
        raw_alert(startsAt="2026-12-01T10:00:00"), raw_alert(startsAt="9999-12-31T23:59:59Z")
    ).alerts

    assert bare.startsAt == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert future.startsAt is None
    view = renderer().view(future, "", "zh-CN", NOW)
    assert (view.starts_at, view.duration) == ("-", "-")


def test_counts_and_nesting_never_cost_the_alerts() -> None:
    negative = parsed(raw_alert(), truncatedAlerts=-5)
    huge = parsed(raw_alert(), truncatedAlerts=10**30)
    with pytest.raises(PayloadError) as nested:
        alertmanager.parse(b'{"version": "4", "alerts": ' + b"[" * 990 + b"]" * 990 + b"}")
    with pytest.raises(PayloadError) as deeper:
        alertmanager.parse(b"[" * 100_000 + b"]" * 100_000)

    assert negative.truncatedAlerts == 0
    assert huge.truncatedAlerts == alertmanager.MAX_TRUNCATED
    assert nested.value.status in (400, 422)
    assert (deeper.value.status, str(deeper.value)) == (
        400,
        "body is nested too deeply to be a webhook",
    )


def test_a_template_that_fails_gives_a_plain_message_and_is_counted(tmp_path: Path) -> None:
    for language in ("zh-CN", "en-US"):
        (tmp_path / f"dingtalk.{language}.md.j2").write_text(
            "{% set title %}x{% endset %}{{ firing[0].no_such_field.deeper }}", encoding="utf-8"
        )
    failures: list[int] = []
    config = TargetConfig.model_validate({"url": "http://robot.example/send", "keyword": "obsctl"})
    broken = Composer(
        Renderer(RenderConfig(templates_dir=tmp_path)), config, "zh-CN", "mention", 20_000,
        on_render_failure=lambda: failures.append(1),
    )  # fmt: skip

    message, count = broken.compose(
        [Entry(alert=alert(queue="matting")), Entry(alert=alert("B"))], NOW
    )

    assert count == 2
    assert message.title == "obsctl [告警中] ApiHighErrorRate"
    assert "消息模板渲染失败" in message.text
    assert "- **ApiHighErrorRate** · critical · 告警中" in message.text
    assert "queue=matting" in message.text and "- **B** · critical" in message.text
    assert failures == [1], "one failure, one count, however many sizes were tried"


INJECTED = "RT[click](//evil.example/x) ![img](http://evil.example/i.png) @all @13900000000"


def test_alert_text_cannot_add_links_images_headings_mentions_or_break_code_spans() -> None:
    hostile = Alert.model_validate(
        raw_alert(
            labels={
                "alertname": "Queue\n#### 🔴 Forged · critical · 告警中",
                "severity": "critical",
                "queue": f"bull:{INJECTED}:meta",
                "instance": "a`b` [x](http://evil.example)",
                "mention": "13900000000, 13800000000",
            },
            annotations={
                "summary": "ok\n\n#### ✅ Everything resolved\n> quote <font color=red>x</font>",
                "description": f"see {INJECTED} and http://evil.example/bare www.evil.example\x00",
                "runbook_url": "http://evil.example/runbook",
                "dashboard_url": "https://grafana.example/d/q?x=1) [y](http://evil.example",
            },
            generatorURL="javascript:alert(1)",
        )
    )
    c = composer("zh-CN", mentions={"mobiles": ["13800000000"]})

    message, _ = c.compose([Entry(alert=hostile, external_url="http://evil.example:9093")], NOW)
    body = json.loads(message.payload)
    text = message.text

    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    targets = re.findall(r"\]\(([^)]*)\)", text)
    assert targets == ["https://grafana.example/d/q?x=1%29%20%5By%5D%28http://evil.example"]
    assert "![" not in text and "\x00" not in text and "<font" not in text
    outside_links = text.replace(targets[0], "")
    assert "http://evil" not in outside_links and "www.evil" not in outside_links
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert [h.split(" ")[0] for h in headings] == ["###", "####"], headings
    assert "####" not in headings[0] and not any(
        line.startswith(">") for line in text.splitlines()[1:] if "Everything" in line
    )
    labels = next(line for line in text.splitlines() if line.startswith("- **标签**"))
    assert labels.count("`") == 4, "every value stays inside its own code span"
    assert "@13900000000" not in text and "@all" not in text
    assert "[静默]" not in text, "the notification's Alertmanager URL is not a trusted prefix"


def test_links_come_only_from_trusted_prefixes_and_the_configured_alertmanager() -> None:
    r = renderer(external_url="http://alertmanager.internal:9093")
    trusted = Alert.model_validate(
        raw_alert(
            annotations={
                "runbook_url": "https://runbooks.example/A",
                "dashboard_url": "https://grafana.example.evil/d",
            },
            generatorURL="http://prometheus.example/graph?g0.expr=up",
        )
    )

    view = r.view(trusted, "http://evil.example:9093", "en-US", NOW)

    assert view.runbook_url == "https://runbooks.example/A"
    assert view.dashboard_url is None, "a look-alike host is not under https://grafana.example"
    assert view.generator_url == "http://prometheus.example/graph?g0.expr=up"
    assert view.silence_url is not None
    assert view.silence_url.startswith("http://alertmanager.internal:9093/#/silences/new?filter=")


def test_a_huge_label_never_cuts_the_silence_link_or_empties_the_message() -> None:
    big = Alert.model_validate(
        raw_alert(
            labels={
                "alertname": "Big",
                "severity": "critical",
                "queue": "q1",
                "payload": "x" * 100_000,
            }
        )
    )

    message, _ = composer("en-US").compose([Entry(alert=big, external_url="http://am:9093")], NOW)
    silence = next(part for part in message.text.split("[Silence](")[1:])
    url = silence.split(")", 1)[0]

    assert len(message.payload) <= 20_000
    assert "- **Summary**: s" in message.text
    assert urllib.parse.unquote(url).endswith('{alertname="Big",queue="q1",severity="critical"}')


def test_a_notification_alertmanager_truncated_says_how_many_were_left_out() -> None:
    notification = parsed(raw_alert(), truncatedAlerts=1_400, groupKey="g")
    entries = [
        Entry(alert=a, group_key="g", truncated_alerts=notification.truncatedAlerts)
        for a in notification.alerts
    ]

    zh_message, _ = composer("zh-CN").compose(entries, NOW)
    en_message, _ = composer("en-US").compose(entries, NOW)

    assert "Alertmanager 未随通知发送本组另外 1400 条告警" in zh_message.text
    assert "Alertmanager left 1400 more alerts of this group out" in en_message.text
