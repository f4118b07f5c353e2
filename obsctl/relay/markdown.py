"""Making alert text and links safe to place in a DingTalk markdown message.

Everything in an alert can be written by whoever can reach Alertmanager's API (usually
unauthenticated) or name a Redis key: alert names, label values, summaries, descriptions and
the links in annotations. None of it may add a link, an image, a heading, a quote, an @-mention
or HTML to the message, break out of a code span, or carry control characters to DingTalk.

DingTalk's markdown renderer does not honour backslash escapes, so the characters that start
markup are replaced by look-alikes that render the same to a reader and mean nothing to the
parser; line breaks become spaces, so a value can never start a line (and thus a heading,
list or quote). Links are kept only under the configured URL prefixes.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from collections.abc import Sequence

ELLIPSIS = "…"
# What starts markup in DingTalk markdown, and the look-alike each becomes.
_LOOKALIKES = str.maketrans(
    {
        "[": "\N{FULLWIDTH LEFT SQUARE BRACKET}",
        "]": "\N{FULLWIDTH RIGHT SQUARE BRACKET}",
        "`": "\N{MODIFIER LETTER GRAVE ACCENT}",
        "<": "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}",
        ">": "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}",
        "*": "\N{ASTERISK OPERATOR}",
        "@": "\N{FULLWIDTH COMMERCIAL AT}",
        "|": "\N{FULLWIDTH VERTICAL LINE}",
        "#": "\N{FULLWIDTH NUMBER SIGN}",
        "\\": "\N{FULLWIDTH REVERSE SOLIDUS}",
    }
)
_SPACES = re.compile(r"\s+")
# A bare address in text would be linked by DingTalk: break the scheme and "www." apart.
_AUTOLINK = re.compile(r"://|\bwww\.", re.IGNORECASE)
# Bidirectional overrides and isolates reorder what a reader sees (e.g. hide a link's target).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
# Characters a URL may not carry into a markdown link without ending it or breaking the line.
_URL_UNSAFE = re.compile(r"[\s()\[\]<>`\"'\\^{}|]")
MAX_LINK_CHARS = 2_000


def _visible(char: str) -> str:
    if char in _BIDI:
        return ""
    category = unicodedata.category(char)
    if category == "Cc":  # NUL, ESC, DEL ...; tabs and line breaks become spaces
        return " " if char in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x85" else ""
    if category in ("Zl", "Zp"):
        return " "
    return char


def plain(value: str) -> str:
    """`value` on one line, without control or bidi characters (for titles and matchers)."""
    cleaned = "".join(_visible(char) for char in value)
    return _SPACES.sub(" ", cleaned).strip()


def text(value: str, limit: int | None = None) -> tuple[str, bool]:
    """`value` made inert for markdown and cut to `limit` characters; whether it was cut."""
    inert = _AUTOLINK.sub(_unlinked, plain(value).translate(_LOOKALIKES))
    if limit is None or len(inert) <= limit:
        return inert, False
    return inert[: max(0, limit)].rstrip() + ELLIPSIS, True


def _unlinked(match: re.Match[str]) -> str:
    found = match.group()
    return "\N{RATIO}//" if found == "://" else found[:-1] + "\N{ONE DOT LEADER}"


def within(url: str, prefix: str) -> bool:
    """Whether `url` lies under `prefix` at a path boundary (``:3000`` never covers ``:30001``)."""
    if not url.startswith(prefix):
        return False
    return prefix.endswith("/") or len(url) == len(prefix) or url[len(prefix)] in "/?#"


def link(url: str | None, prefixes: Sequence[str]) -> str | None:
    """`url` ready for ``[label](url)`` when it lies under a trusted prefix, else None."""
    if not url:
        return None
    url = url.strip()
    if not url.lower().startswith(("http://", "https://")):
        return None
    if not any(within(url, prefix) for prefix in prefixes):
        return None
    safe = _URL_UNSAFE.sub(lambda m: urllib.parse.quote(m.group(), safe=""), plain(url))
    return safe if len(safe) <= MAX_LINK_CHARS else None
