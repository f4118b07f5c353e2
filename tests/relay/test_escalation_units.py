"""Escalation's decisions with a scripted Alertmanager and clock: when, how often, and when not."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from obsctl.relay.alertmanager import Alert
from obsctl.relay.claim_links import ClaimLinks
from obsctl.relay.claims import AlertmanagerUnreachable, Claim
from obsctl.relay.config import EscalationConfig
from obsctl.relay.escalation import STATE_FILE, Escalator
from obsctl.relay.metrics import RelayMetrics
from obsctl.relay.tencent_sms import SmsResult

START = dt.datetime(2025, 1, 1, 2, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START.timestamp() + 30

    def __call__(self) -> float:
        return self.now


class Desk:
    """Alertmanager as the escalation sees it: episode states and claims."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, int], str] = {}
        self.held: dict[tuple[str, int], Claim] = {}
        self.down = False

    async def episodes(self) -> dict[tuple[str, int], str]:
        if self.down:
            raise AlertmanagerUnreachable("Alertmanager cannot be reached (ConnectError)")
        return dict(self.states)

    async def claims(self) -> dict[tuple[str, int], Claim]:
        return dict(self.held)


class Robot:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def announce(self, title: str, text: str, mobiles: Any = (), at_all: bool = False) -> None:
        self.sent.append({"title": title, "text": text, "mobiles": list(mobiles), "at_all": at_all})


def _alert(fingerprint: str = "fp1", severity: str = "critical", team: str = "ai") -> Alert:
    return Alert.model_validate(
        {
            "status": "firing",
            "labels": {
                "alertname": "QueueStalled",
                "severity": severity,
                "team": team,
                "queue": "image",
            },
            "annotations": {"summary": "image queue stalled"},
            "startsAt": START.isoformat(),
            "fingerprint": fingerprint,
        }
    )


def _key(alert: Alert) -> tuple[str, int]:
    assert alert.startsAt is not None
    return alert.fingerprint, int(alert.startsAt.timestamp())


CONFIG = EscalationConfig.model_validate(
    {
        "policies": {
            "*": [
                {"after": "10m", "targets": ["oncall", "team-ai"], "at_all": True},
                {
                    "after": "30m",
                    "targets": ["oncall"],
                    "mobiles": ["13900000000"],
                    "sms": ["13900000000", "+86-13900000001"],
                },
            ]
        }
    }
)


class Texter:
    """The SMS client as the escalation sees it: what it was asked to text, and its answer."""

    def __init__(self, result: SmsResult | None = None) -> None:
        self.texts: list[tuple[list[str], dict[str, str]]] = []
        self.result = result
        self.on_send: Any = None

    async def send(self, mobiles: list[str], values: dict[str, str]) -> SmsResult:
        self.texts.append((mobiles, values))
        if self.on_send is not None:
            self.on_send()
        return self.result or SmsResult(sent=[f"masked-{m}" for m in mobiles])


def _escalator(
    tmp_path: Path | None, clock: Clock, desk: Desk, sms: Texter | None = None
) -> tuple[Escalator, dict[str, Robot], RelayMetrics]:
    robots = {"oncall": Robot(), "team-ai": Robot()}
    metrics = RelayMetrics(robots)
    escalator = Escalator(
        CONFIG, desk, ClaimLinks("https://relay.example", b"k" * 32, 3600),  # type: ignore[arg-type]
        robots, metrics, lambda target: "zh-CN", ZoneInfo("Asia/Shanghai"),  # type: ignore[arg-type]
        ["queue", "team"], tmp_path, clock=clock, sms=sms,  # type: ignore[arg-type]
    )  # fmt: skip
    return escalator, robots, metrics


def _sample(metrics: RelayMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _run(escalator: Escalator) -> None:
    asyncio.run(escalator.check())


def test_an_unclaimed_alert_escalates_at_each_level_once() -> None:
    clock, desk = Clock(), Desk()
    escalator, robots, metrics = _escalator(None, clock, desk)
    alert = _alert()
    desk.states[_key(alert)] = "active"
    escalator.delivered("oncall", alert)

    clock.now += 599
    _run(escalator)
    assert not robots["oncall"].sent, "not before `after`"

    clock.now += 2
    _run(escalator)
    _run(escalator)
    (first,) = robots["oncall"].sent
    assert first["at_all"] and "[升级·第1级] QueueStalled 未认领" in first["title"]
    assert (
        "queue=`image`" in first["text"] and "[认领](https://relay.example/claim/" in first["text"]
    )
    assert len(robots["team-ai"].sent) == 1, "the second robot hears it too"

    clock.now += 20 * 60
    _run(escalator)
    assert [m["mobiles"] for m in robots["oncall"].sent] == [[], ["13900000000"]]
    assert len(robots["team-ai"].sent) == 1, "level 2 goes to on-call only"
    assert metrics.escalations.labels("1")._value.get() == 1
    assert metrics.escalations.labels("2")._value.get() == 1


def test_a_claimed_or_resolved_alert_never_escalates_and_is_forgotten() -> None:
    clock, desk = Clock(), Desk()
    escalator, robots, _ = _escalator(None, clock, desk)
    claimed, resolved = _alert("fp-claimed"), _alert("fp-resolved")
    desk.states[_key(claimed)] = "active"
    desk.held[_key(claimed)] = Claim("张三", START + dt.timedelta(hours=1), "s1")
    escalator.delivered("oncall", claimed)
    escalator.delivered("oncall", resolved)  # not in Alertmanager any more

    clock.now += 3600
    _run(escalator)

    assert not robots["oncall"].sent and escalator.tracked() == 0


def test_a_silenced_alert_waits_and_escalates_once_the_silence_is_gone() -> None:
    clock, desk = Clock(), Desk()
    escalator, robots, _ = _escalator(None, clock, desk)
    alert = _alert()
    desk.states[_key(alert)] = "suppressed"
    escalator.delivered("oncall", alert)
    clock.now += 700
    _run(escalator)
    assert not robots["oncall"].sent and escalator.tracked() == 1
    desk.states[_key(alert)] = "active"
    _run(escalator)
    assert len(robots["oncall"].sent) == 1


def test_warnings_and_alerts_without_a_fingerprint_are_not_tracked() -> None:
    escalator, _, _ = _escalator(None, Clock(), Desk())
    escalator.delivered("oncall", _alert(severity="warning"))
    escalator.delivered("oncall", _alert().model_copy(update={"fingerprint": ""}))
    escalator.delivered("oncall", _alert().model_copy(update={"status": "resolved"}))
    assert escalator.tracked() == 0


def test_nothing_escalates_on_a_guess_while_alertmanager_cannot_be_asked() -> None:
    clock, desk = Clock(), Desk()
    escalator, robots, metrics = _escalator(None, clock, desk)
    alert = _alert()
    desk.states[_key(alert)] = "active"
    escalator.delivered("oncall", alert)
    desk.down, clock.now = True, clock.now + 3600
    _run(escalator)
    assert not robots["oncall"].sent and escalator.tracked() == 1
    assert metrics.escalation_errors.labels("alertmanager")._value.get() == 1
    desk.down = False
    _run(escalator)
    assert len(robots["oncall"].sent) == 2, "both levels are due by now"


def test_a_restart_keeps_what_is_tracked_and_sends_no_level_twice(tmp_path: Path) -> None:
    clock, desk = Clock(), Desk()
    escalator, robots, _ = _escalator(tmp_path, clock, desk)
    alert = _alert()
    desk.states[_key(alert)] = "active"
    escalator.delivered("oncall", alert)
    clock.now += 601
    _run(escalator)
    assert len(robots["oncall"].sent) == 1

    again, robots_again, _ = _escalator(tmp_path, clock, desk)
    again.restore()
    assert again.tracked() == 1
    _run(again)
    assert not robots_again["oncall"].sent, "level 1 was sent before the restart"
    clock.now += 20 * 60
    _run(again)
    assert len(robots_again["oncall"].sent) == 1


def test_a_level_with_phones_texts_them_once_with_the_alert_and_its_age(tmp_path: Path) -> None:
    clock, desk, texter = Clock(), Desk(), Texter()
    escalator, _, metrics = _escalator(tmp_path, clock, desk, texter)
    alert = _alert()
    desk.states[_key(alert)] = "active"
    escalator.delivered("oncall", alert)
    clock.now += 601
    _run(escalator)
    assert not texter.texts, "level 1 has no phones"
    clock.now += 20 * 60
    _run(escalator)
    _run(escalator)
    assert len(texter.texts) == 1
    mobiles, values = texter.texts[0]
    assert mobiles == ["13900000000", "+86-13900000001"]
    # Fired since START; the clock started 30 s after it.
    assert values == {"alertname": "QueueStalled", "level": "2", "minutes": "31",
                      "severity": "critical", "team": "ai"}  # fmt: skip
    assert _sample(metrics, "obsctl_relay_escalation_sms_total", outcome="sent") == 2


def test_a_refused_or_failed_text_is_counted_and_never_retried_as_a_new_level(
    tmp_path: Path,
) -> None:
    clock, desk = Clock(), Desk()
    texter = Texter(SmsResult(sent=["+86139****0000"], refused=[("+86139****0001", "Limit")]))
    escalator, _, metrics = _escalator(tmp_path, clock, desk, texter)
    alert = _alert()
    desk.states[_key(alert)] = "active"
    escalator.delivered("oncall", alert)
    clock.now += 31 * 60
    _run(escalator)
    assert _sample(metrics, "obsctl_relay_escalation_sms_total", outcome="failed") == 1
    assert _sample(metrics, "obsctl_relay_escalation_errors_total", reason="sms") == 1
    texter.result = SmsResult(error="AuthFailure.SignatureFailure: no")
    _run(escalator)
    assert len(texter.texts) == 1


def test_the_level_is_on_disk_before_it_is_texted(tmp_path: Path) -> None:
    """A relay killed while texting does not text everyone again when it comes back."""
    clock, desk, texter = Clock(), Desk(), Texter()
    escalator, _, _ = _escalator(tmp_path, clock, desk, texter)
    alert = _alert()
    desk.states[_key(alert)] = "active"
    escalator.delivered("oncall", alert)
    seen: list[list[int]] = []
    texter.on_send = lambda: seen.append(
        [row["levels_sent"] for row in json.loads((tmp_path / STATE_FILE).read_text())]
    )
    clock.now += 31 * 60
    _run(escalator)
    assert seen == [[2]]


def test_an_unreadable_state_file_is_set_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    escalator, _, _ = _escalator(tmp_path, Clock(), Desk())
    escalator.restore()
    assert escalator.tracked() == 0
    assert list(tmp_path.glob("escalations.unreadable-*"))


def test_levels_out_of_order_and_unknown_targets_are_config_errors() -> None:
    with pytest.raises(ValueError, match="increasing order"):
        EscalationConfig.model_validate(
            {
                "policies": {
                    "*": [{"after": "30m", "targets": ["a"]}, {"after": "10m", "targets": ["a"]}]
                }
            }
        )


def test_a_relay_config_whose_escalation_cannot_run_names_each_problem(tmp_path: Path) -> None:
    from obsctl.relay.config import ConfigError, load

    path = tmp_path / "relay.yaml"
    path.write_text(
        "delivery: {spool_dir: null}\n"
        "targets:\n  oncall: {url: 'https://oapi.dingtalk.com/robot/send?access_token=x'}\n"
        "escalation:\n  policies:\n    '*':\n"
        "    - {after: 10m, targets: [oncall, pager], email: [sre@example.com],"
        " sms: ['13800000000']}\n"
    )
    with pytest.raises(ConfigError) as error:
        load(path, {})
    text = str(error.value)
    assert "needs the claim section" in text
    assert "escalation.policies.*.0.targets: 'pager' is not a target" in text
    assert "escalation.policies.*.0.email: needs escalation.smtp" in text
    assert "escalation.policies.*.0.sms: needs escalation.sms" in text


def test_the_project_config_wants_claims_for_escalation() -> None:
    from obsctl.mixin.config import MixinConfig

    from conftest import demo_config

    raw = demo_config().model_dump(by_alias=True, exclude_none=True)
    raw["relay"].pop("claim")
    with pytest.raises(ValueError, match=r"escalation: needs relay.claim"):
        MixinConfig.model_validate(raw)
