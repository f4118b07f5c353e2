"""Validation of robot message bodies, and what the fake reads out of a valid one."""

from typing import Any

from obsctl.stack.fakes.dingtalk.errcodes import (
    UNSUPPORTED_MSGTYPE,
    RobotAnswer,
    missing_param,
)

# Required text fields per message type; actionCard buttons and feedCard links are checked apart.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "link": ("title", "text", "messageUrl"),
    "actionCard": ("title", "text"),
    "feedCard": (),
}
_BUTTON_FIELDS = ("title", "actionURL")
_FEED_LINK_FIELDS = ("title", "messageURL", "picURL")


def _is_text(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _is_text_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _missing(section: dict[str, Any], fields: tuple[str, ...], path: str) -> RobotAnswer | None:
    for field in fields:
        if not _is_text(section.get(field)):
            return missing_param(f"{path}->{field}")
    return None


def _check_items(items: object, fields: tuple[str, ...], path: str) -> RobotAnswer | None:
    if not isinstance(items, list) or not items:
        return missing_param(path)
    for item in items:
        if not isinstance(item, dict):
            return missing_param(path)
        problem = _missing(item, fields, path)
        if problem:
            return problem
    return None


def _check_action_card(card: dict[str, Any]) -> RobotAnswer | None:
    if "btns" in card:
        return _check_items(card["btns"], _BUTTON_FIELDS, "actionCard->btns")
    return _missing(card, ("singleTitle", "singleURL"), "actionCard")


def _check_at(at: object) -> RobotAnswer | None:
    if not isinstance(at, dict):
        return missing_param("at")
    for field in ("atMobiles", "atUserIds"):
        if field in at and not _is_text_list(at[field]):
            return missing_param(f"at->{field}")
    if "isAtAll" in at and not isinstance(at["isAtAll"], bool):
        return missing_param("at->isAtAll")
    return None


def validate(body: object) -> RobotAnswer | None:
    """Return the error answer for an invalid message body, or None when it is valid."""
    if not isinstance(body, dict):
        return missing_param("json")
    msgtype = body.get("msgtype")
    if not _is_text(msgtype):
        return missing_param("msgtype")
    if msgtype not in REQUIRED_FIELDS:
        return UNSUPPORTED_MSGTYPE
    section = body.get(msgtype)
    if not isinstance(section, dict):
        return missing_param(msgtype)
    problem = _missing(section, REQUIRED_FIELDS[msgtype], msgtype)
    if problem is None and msgtype == "actionCard":
        problem = _check_action_card(section)
    if problem is None and msgtype == "feedCard":
        problem = _check_items(section.get("links"), _FEED_LINK_FIELDS, "feedCard->links")
    if problem is None and "at" in body:
        problem = _check_at(body["at"])
    return problem


def visible_text(body: dict[str, Any]) -> str:
    """Return the text a group member would see; keywords are matched against it."""
    msgtype = body["msgtype"]
    section = body[msgtype]
    parts = [section.get(field) for field in ("title", "text", "content", "singleTitle")]
    items_key = {"actionCard": "btns", "feedCard": "links"}.get(msgtype)
    if items_key:
        parts.extend(item["title"] for item in section.get(items_key, []))
    return "\n".join(part for part in parts if isinstance(part, str))


def mentions(body: object) -> dict[str, Any]:
    """Return the ``at`` block with every field present, or {} when there is none."""
    at = body.get("at") if isinstance(body, dict) else None
    if not isinstance(at, dict):
        return {}
    return {
        "atMobiles": at.get("atMobiles", []),
        "atUserIds": at.get("atUserIds", []),
        "isAtAll": at.get("isAtAll", False),
    }
