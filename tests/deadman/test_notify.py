"""The dead man's switch's texts: a drill's notices say so, and titles read back as their kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsctl.deadman.config import DeadmanConfig
from obsctl.deadman.notify import Texts, kind_of_title
from obsctl.deadman.watch import Kind, Notice

T0 = 1_800_000_000.0


def _config(tmp_path: Path, language: str, keyword: str | None = None) -> DeadmanConfig:
    robot = {
        "url": "https://oapi.dingtalk.com/robot/send?access_token=x",
        "mobiles": ["13800000000"],
    }
    if keyword:
        robot["keyword"] = keyword
    return DeadmanConfig.model_validate(
        {"state_dir": str(tmp_path), "language": language,
         "heartbeats": [{"name": "alert-path"}], "notify": {"dingtalk": robot}}
    )  # fmt: skip


def _notice(kind: Kind, drill: str | None) -> Notice:
    return Notice(kind=kind, heartbeat="alert-path", created_at=T0 + 200, last_seen=T0,
                  missing_since=T0, pending=["dingtalk"], drill=drill)  # fmt: skip


@pytest.mark.parametrize(
    ("language", "title", "line"),
    [
        ("zh-CN", "[演练] [告警中] WatchdogMissing alert-path",
         "【演练】这是故障演练 d-1 触发的告警\N{FULLWIDTH COMMA}用于验证告警链路"
         "\N{FULLWIDTH COMMA}无需处理。"),
        ("en-US", "[DRILL] [FIRING] WatchdogMissing alert-path",
         "DRILL raised by fault drill d-1 to prove the alert path; no action needed."),
    ],
)  # fmt: skip
def test_a_drills_notice_says_so_in_title_and_body(
    tmp_path: Path, language: str, title: str, line: str
) -> None:
    config = _config(tmp_path, language)
    texts = Texts(config)
    notice = _notice(Kind.MISSING, "d-1")
    assert texts.title(notice) == title
    assert texts.lines(notice, T0 + 200)[1] == line
    assert config.notify.dingtalk is not None
    message = texts.markdown(notice, T0 + 200, config.notify.dingtalk)
    assert f"> **{line}**" in message.text and message.mobiles == ("13800000000",)
    plain = texts.title(_notice(Kind.MISSING, None))
    assert "演练" not in plain and "DRILL" not in plain


@pytest.mark.parametrize("language", ["zh-CN", "en-US"])
@pytest.mark.parametrize("drill", [None, "d-2"])
def test_every_title_reads_back_as_its_kind(
    tmp_path: Path, language: str, drill: str | None
) -> None:
    config = _config(tmp_path, language, keyword="obsctl")
    texts = Texts(config)
    assert config.notify.dingtalk is not None
    for kind in Kind:
        notice = _notice(kind, drill)
        assert kind_of_title(texts.title(notice)) is kind
        title = texts.markdown(notice, T0 + 200, config.notify.dingtalk).title
        assert title.startswith("obsctl ") and kind_of_title(title) is kind
    assert kind_of_title("[FIRING:1] DependencyDown critical") is None
