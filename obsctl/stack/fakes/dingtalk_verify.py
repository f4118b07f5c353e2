"""How the DingTalk robot fake checks a request's signature (加签), as DingTalk documents it.

Written apart from the relay's signer (``obsctl.relay.signing``) on purpose: if the two shared
code, a signing bug would be accepted by the fake and could only show against real DingTalk.
The expected value is the base64 of HMAC-SHA256(key=secret, msg="<timestamp>\\n<secret>").
"""

import base64
import hmac
import re
from enum import Enum

# DingTalk refuses a timestamp more than one hour away from its own clock.
MAX_CLOCK_SKEW_MS = 3_600_000

_TIMESTAMP = re.compile(r"[0-9]{1,16}")


class SignCheck(Enum):
    """Outcome of checking a request's ``timestamp`` and ``sign`` parameters."""

    OK = "ok"
    MISSING = "missing"
    BAD_TIMESTAMP = "bad_timestamp"
    MISMATCH = "mismatch"


def expected_sign(secret: str, timestamp: str) -> bytes:
    """The base64 signature DingTalk expects for this timestamp (as sent, not URL-encoded)."""
    digest = hmac.digest(secret.encode("utf-8"), "\n".join((timestamp, secret)).encode(), "sha256")
    return base64.standard_b64encode(digest)


def verify(secret: str, timestamp: str | None, sign_value: str | None, now_ms: int) -> SignCheck:
    """Check the already URL-decoded ``timestamp`` and ``sign`` query values against `secret`."""
    if not timestamp or not sign_value:
        return SignCheck.MISSING
    if not _TIMESTAMP.fullmatch(timestamp) or abs(now_ms - int(timestamp)) > MAX_CLOCK_SKEW_MS:
        return SignCheck.BAD_TIMESTAMP
    if hmac.compare_digest(expected_sign(secret, timestamp), sign_value.encode()):
        return SignCheck.OK
    return SignCheck.MISMATCH
