"""DingTalk custom-robot request signing (加签).

The robot's secret signs ``f"{timestamp_ms}\\n{secret}"`` with HMAC-SHA256; the base64 of
the digest travels URL-encoded in the ``sign`` query parameter next to ``timestamp``.
"""

import base64
import hashlib
import hmac
import urllib.parse


def signature(secret: str, timestamp_ms: int) -> str:
    """Return the raw base64 signature for `timestamp_ms` (not yet URL-encoded)."""
    message = f"{timestamp_ms}\n{secret}".encode()
    mac = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def sign(secret: str, timestamp_ms: int) -> str:
    """Return the URL-encoded signature, ready to append as ``&sign=...``."""
    return urllib.parse.quote_plus(signature(secret, timestamp_ms))
