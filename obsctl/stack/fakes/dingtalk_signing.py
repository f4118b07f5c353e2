"""DingTalk custom-robot request signing (加签), shared by the fake and the relay.

The robot's secret signs ``f"{timestamp_ms}\\n{secret}"`` with HMAC-SHA256; the base64 of
the digest travels URL-encoded in the ``sign`` query parameter next to ``timestamp``.
"""

import base64
import hashlib
import hmac
import re
import urllib.parse
from enum import Enum

# DingTalk refuses a timestamp more than one hour away from its own clock.
MAX_CLOCK_SKEW_MS = 3_600_000

_TIMESTAMP = re.compile(r"[0-9]{1,16}")


def _digest(secret: str, timestamp: str) -> str:
    message = f"{timestamp}\n{secret}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def signature(secret: str, timestamp_ms: int) -> str:
    """Return the raw base64 signature for `timestamp_ms` (not yet URL-encoded)."""
    return _digest(secret, str(timestamp_ms))


def sign(secret: str, timestamp_ms: int) -> str:
    """Return the URL-encoded signature, ready to append as ``&sign=...``."""
    return urllib.parse.quote_plus(signature(secret, timestamp_ms))


class SignCheck(Enum):
    """Outcome of checking a request's ``timestamp`` and ``sign`` parameters."""

    OK = "ok"
    MISSING = "missing"
    BAD_TIMESTAMP = "bad_timestamp"
    MISMATCH = "mismatch"


def verify(secret: str, timestamp: str | None, sign_value: str | None, now_ms: int) -> SignCheck:
    """Check the already URL-decoded ``timestamp`` and ``sign`` query values against `secret`."""
    if not timestamp or not sign_value:
        return SignCheck.MISSING
    if not _TIMESTAMP.fullmatch(timestamp) or abs(now_ms - int(timestamp)) > MAX_CLOCK_SKEW_MS:
        return SignCheck.BAD_TIMESTAMP
    expected = _digest(secret, timestamp)
    if hmac.compare_digest(expected.encode(), sign_value.encode()):
        return SignCheck.OK
    return SignCheck.MISMATCH
