"""How the Tencent Cloud SMS fake checks a TC3-HMAC-SHA256 signature, as Tencent documents it.

Written apart from the relay's signer (``obsctl.relay.tencent_sms``) on purpose: if the two
shared code, a signing bug would be accepted here and show only against Tencent. It reads the
Authorization header the way the API does: the credential scope names the date and service,
SignedHeaders names the headers to canonicalise (name and value lower-cased and trimmed), and
the signing key is HMAC-chained from ``"TC3" + SecretKey`` through date, service and
``tc3_request``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# Tencent refuses a request signed more than five minutes from its own clock.
MAX_CLOCK_SKEW_SECONDS = 300

_AUTHORIZATION = re.compile(
    r"TC3-HMAC-SHA256 Credential=(?P<id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/(?P<service>[a-z]+)"
    r"/tc3_request, SignedHeaders=(?P<headers>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class Refusal:
    """An API error: Tencent's code and message."""

    code: str
    message: str


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_key_of: Callable[[str], str | None],
    service: str,
    now: float,
) -> tuple[str, Refusal | None]:
    """(SecretId, None) for a well signed request, else (SecretId or "", why it is refused)."""
    match = _AUTHORIZATION.fullmatch(headers.get("Authorization", "").strip())
    if match is None:
        return "", Refusal("AuthFailure.InvalidAuthorization", "Authorization is malformed.")
    secret_id = match["id"]
    timestamp = headers.get("X-TC-Timestamp", "")
    if not timestamp.isdigit():
        return secret_id, Refusal("MissingParameter", "X-TC-Timestamp is missing or not a number.")
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return secret_id, Refusal("AuthFailure.SignatureExpire", "The signature has expired.")
    day = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
    if match["date"] != day or match["service"] != service:
        return secret_id, Refusal(
            "AuthFailure.InvalidAuthorization", "The credential scope does not match the request."
        )
    secret_key = secret_key_of(secret_id)
    if secret_key is None:
        return secret_id, Refusal("AuthFailure.SecretIdNotFound", "The SecretId does not exist.")
    signed = match["headers"].split(";")
    if "content-type" not in signed or "host" not in signed:
        return secret_id, Refusal(
            "AuthFailure.InvalidAuthorization", "SignedHeaders must include content-type and host."
        )
    lowered = {name.lower(): value for name, value in headers.items()}
    canonical_headers = "".join(
        f"{name}:{lowered.get(name, '').strip().lower()}\n" for name in signed
    )
    canonical = "\n".join(
        [method.upper(), path, query, canonical_headers, match["headers"],
         hashlib.sha256(body).hexdigest()]
    )  # fmt: skip
    scope = f"{day}/{service}/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), day), service), "tc3_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["signature"]):
        return secret_id, Refusal("AuthFailure.SignatureFailure", "The signature does not match.")
    return secret_id, None
