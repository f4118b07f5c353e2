"""Which answer of a provider counts as up: its status line and a field of its JSON."""

from __future__ import annotations

import json
from http import HTTPStatus

from pydantic import Field

from obsctl.configfile import StrictModel

JsonScalar = str | bool | int | float | None


class ExpectJson(StrictModel):
    """A field of the JSON answer, by dotted path (`data.status`, `items.0.ok`), and its value."""

    field: str = Field(pattern=r"^[^.\s]{1,64}(\.[^.\s]{1,64}){0,15}$")
    equals: JsonScalar

    def mismatch(self, document: object) -> str | None:
        """Why `document` does not have the expected value at `field`; None when it does."""
        node = document
        walked: list[str] = []
        for part in self.field.split("."):
            where = ".".join(walked) or "the answer"
            if isinstance(node, dict):
                if part not in node:
                    return f"JSON field {self.field} is missing ({where} has {_keys(node)})"
                node = node[part]
            elif isinstance(node, list) and part.isdigit():
                if int(part) >= len(node):
                    return f"JSON field {self.field} is missing ({where} has {len(node)} items)"
                node = node[int(part)]
            else:
                return f"JSON field {self.field} is missing ({where} is {_kind(node)})"
            walked.append(part)
        if not same_json(node, self.equals):
            return f"JSON field {self.field} is {shown(node)}, expected {shown(self.equals)}"
        return None


def same_json(found: object, expected: JsonScalar) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, a string is never a number."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return found is expected
    if isinstance(expected, int | float) and isinstance(found, int | float):
        return found == expected
    return type(found) is type(expected) and found == expected


def shown(value: object, limit: int = 60) -> str:
    """A JSON value as a short text for a detail."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _keys(node: dict[str, object]) -> str:
    if not node:
        return "no fields"
    return "fields " + shown(sorted(str(k) for k in node), 80)


def _kind(node: object) -> str:
    if isinstance(node, list):
        return f"a list of {len(node)}"
    return "null" if node is None else f"the {type(node).__name__} {shown(node, 30)}"


def describe_status(code: int) -> str:
    """'HTTP 503 Service Unavailable' (the phrase from the standard, not from the server)."""
    try:
        return f"HTTP {code} {HTTPStatus(code).phrase}"
    except ValueError:
        return f"HTTP {code}"
