"""Claim links without a network: signing, every way a link can be bad, config, the message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_relay_units import ENV, NOW, SHIPPED, alert, renderer

from obsctl.relay.alertmanager import Alert
from obsctl.relay.claim_links import BadLink, ClaimLinks
from obsctl.relay.compose import Composer, Entry
from obsctl.relay.config import ConfigError, TargetConfig, load
from obsctl.relay.runner import _claim_link, claim_links

KEY = b"k" * 32
LINKS = ClaimLinks("https://relay.example/", KEY, ttl_seconds=3600)
SENT_AT = NOW.timestamp()


def _token(link: str) -> str:
    return link.rsplit("/", 1)[1]


def test_a_link_names_its_robot_alert_and_episode_and_checks_back() -> None:
    link = LINKS.link("oncall", alert(), now=SENT_AT)
    assert link is not None and link.startswith("https://relay.example/claim/")

    ticket = LINKS.check(_token(link), now=SENT_AT + 60)

    assert ticket.target == "oncall" and ticket.fingerprint == "abc"
    assert ticket.started == int(alert().startsAt.timestamp())  # type: ignore[union-attr]
    assert ticket.expires == int(SENT_AT + 3600)


def test_only_a_firing_alert_with_a_fingerprint_gets_a_link() -> None:
    assert LINKS.link("oncall", alert(status="resolved")) is None
    no_fingerprint = alert().model_copy(update={"fingerprint": ""})
    assert LINKS.link("oncall", no_fingerprint) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t[:5] + ("A" if t[5] != "A" else "B") + t[6:],  # payload changed
        lambda t: t[:-3] + ("x" if t[-3] != "x" else "y") + t[-2:],  # signature changed
        lambda t: t.split(".")[0],  # signature cut off
        lambda t: "",
        lambda t: "." + t.split(".")[1],
        lambda t: t + "é",
    ],
)
def test_a_changed_or_cut_link_is_refused(damage: object) -> None:
    token = _token(LINKS.link("oncall", alert(), now=SENT_AT) or "")
    with pytest.raises(BadLink):
        LINKS.check(damage(token), now=SENT_AT)  # type: ignore[operator]


def test_a_link_signed_with_another_key_or_for_another_robot_is_refused() -> None:
    forged = ClaimLinks("https://relay.example", b"x" * 32, 3600).link("oncall", alert())
    with pytest.raises(BadLink, match="signature"):
        LINKS.check(_token(forged or ""))
    # A valid payload moved under another robot's name is a changed payload.
    payload, signature = _token(LINKS.link("oncall", alert()) or "").split(".")
    other, _ = _token(LINKS.link("team-ai", alert()) or "").split(".")
    with pytest.raises(BadLink):
        LINKS.check(f"{other}.{signature}")
    assert LINKS.check(f"{payload}.{signature}").target == "oncall"


def test_a_link_expires() -> None:
    token = _token(LINKS.link("oncall", alert(), now=SENT_AT) or "")
    LINKS.check(token, now=SENT_AT + 3599)
    with pytest.raises(BadLink, match="expired"):
        LINKS.check(token, now=SENT_AT + 3601)


def _claim_config(tmp_path: Path, claim: str) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(
        "delivery: {spool_dir: null}\n"
        "targets:\n  oncall: {url: 'https://oapi.dingtalk.com/robot/send?access_token=x'}\n" + claim
    )
    return path


def test_the_claim_section_takes_its_key_and_addresses_from_the_environment(
    tmp_path: Path,
) -> None:
    path = _claim_config(
        tmp_path, "claim: {url: 'http://relay:1', key: '${KEY}', alertmanager_url: 'http://am:1'}\n"
    )
    env = {"KEY": "z" * 20, "OBSCTL_RELAY_CLAIM_URL": "https://relay.example",
           "OBSCTL_RELAY_ALERTMANAGER_URL": "http://am.internal:9093"}  # fmt: skip

    claim = load(path, env).claim

    assert claim is not None and claim.url == "https://relay.example"
    assert claim.alertmanager_url == "http://am.internal:9093"
    assert claim.durations[0] == 3600 and claim.severities == ["critical", "warning"]
    # Without a claim section the variables add none: claims stay off.
    assert load(_claim_config(tmp_path, ""), env).claim is None


def test_a_short_claim_key_is_an_error_naming_the_key_not_its_value(tmp_path: Path) -> None:
    path = _claim_config(
        tmp_path,
        "claim: {url: 'http://relay:1', key: 'short-9f2', alertmanager_url: 'http://a:1'}\n",
    )
    with pytest.raises(ConfigError) as error:
        load(path, {})
    assert "claim.key" in str(error.value) and "16 characters" in str(error.value)
    assert "short-9f2" not in str(error.value)


def test_the_shipped_relay_config_turns_claims_on() -> None:
    config = load(SHIPPED, {**ENV, "OBSCTL_RELAY_CLAIM_KEY": "c" * 24})
    assert config.claim is not None and config.claim.key.get_secret_value() == "c" * 24


def _composer(language: str = "en-US") -> Composer:
    config = load(SHIPPED, {**ENV, "OBSCTL_RELAY_CLAIM_KEY": "c" * 24})
    target = TargetConfig.model_validate({"url": "http://robot.example/send"})
    links = claim_links(config.claim)
    return Composer(
        renderer(), target, language, "mention", 20_000,  # type: ignore[arg-type]
        claim_link=_claim_link(links, config.claim, "oncall"),
    )  # fmt: skip


@pytest.mark.parametrize(("language", "word"), [("en-US", "Claim"), ("zh-CN", "认领")])
def test_firing_critical_and_warning_alerts_carry_a_claim_link(language: str, word: str) -> None:
    composer = _composer(language)
    entries = [
        Entry(alert=alert("A", severity="critical")),
        Entry(alert=alert("B", severity="warning").model_copy(update={"fingerprint": "def"})),
        Entry(alert=alert("C", severity="info").model_copy(update={"fingerprint": "ghi"})),
        Entry(alert=alert("D", status="resolved").model_copy(update={"fingerprint": "jkl"})),
    ]
    message, count = composer.compose(entries, NOW)
    assert count == 4
    links = re.findall(rf"\[{word}\]\((http[^)]+)\)", message.text)
    assert len(links) == 2, message.text
    config = load(SHIPPED, {**ENV, "OBSCTL_RELAY_CLAIM_KEY": "c" * 24})
    checker = claim_links(config.claim)
    assert checker is not None
    assert [checker.check(_token(link)).fingerprint for link in links] == ["abc", "def"]


def test_a_claim_notice_carries_the_robots_keyword() -> None:
    target = TargetConfig.model_validate({"url": "http://robot.example/send", "keyword": "告警"})
    composer = Composer(renderer(), target, "zh-CN", "mention", 20_000)
    message = composer.notice("[已认领] ApiDown", "已认领 by **张三** until **03:40**\n")
    assert "告警" in message.title and "告警" in message.text
    assert b'"isAtAll":false' in message.payload and message.alerts == 0


def test_alerts_without_claims_configured_have_no_claim_link() -> None:
    target = TargetConfig.model_validate({"url": "http://robot.example/send"})
    composer = Composer(renderer(), target, "en-US", "mention", 20_000)
    message, _ = composer.compose([Entry(alert=alert())], NOW)
    assert "[Claim]" not in message.text and "/claim/" not in message.text


def test_an_alert_parsed_from_a_webhook_keeps_its_fingerprint_for_the_link() -> None:
    parsed = Alert.model_validate(
        {
            "status": "firing",
            "labels": {"alertname": "X"},
            "startsAt": "2025-01-01T00:00:00Z",
            "fingerprint": "f" * 16,
        }
    )
    link = LINKS.link("oncall", parsed)
    assert link is not None and LINKS.check(_token(link)).fingerprint == "f" * 16
