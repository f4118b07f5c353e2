"""What a provider probe sends and which answer it accepts, validated without echoing a header."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    HttpUrl,
    JsonValue,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from obsctl.config_types import Duration, LabelValue, slow_below_timeout, timeout_within_interval
from obsctl.configfile import StrictModel
from obsctl.exporter.probes.provider_answer import ExpectJson
from obsctl.exporter.probes.provider_headers import Unresolved

Method = Literal["GET", "HEAD", "POST"]
# The error type of a header whose ${…} reference did not resolve (the loader explains it).
UNRESOLVED = "unresolved_reference"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
# The HTTP client sets these from the request itself; a configured one would only break it.
_CLIENT_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_HEADER_TEXT = re.compile(r"[\t\x20-\x7e]*")
MAX_HEADERS = 20
MAX_HEADER_VALUE = 8192


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


def _header_value(value: object) -> object:
    """Refuse a header value that cannot be sent, saying why but never showing it."""
    if isinstance(value, Unresolved):
        raise PydanticCustomError(UNRESOLVED, "{problem}", {"problem": value.problem})
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str):
        raise ValueError(f"a header value must be text, found {type(value).__name__}")
    if not value.strip():
        raise ValueError(
            "a header value must not be empty, found an empty one (an empty variable?)"
        )
    if len(value) > MAX_HEADER_VALUE:
        raise ValueError(f"a header value is at most {MAX_HEADER_VALUE} characters, found more")
    if not _HEADER_TEXT.fullmatch(value):
        position = next(i for i, char in enumerate(value) if not _HEADER_TEXT.fullmatch(char))
        raise ValueError(
            "a header value holds printable ASCII only, found another character at position "
            f"{position + 1} (the value is never shown)"
        )
    if "${" in value:
        raise ValueError(
            "found a '${' that is not a reference such as ${NAME}, ${NAME:-default} or "
            "${file:/path} (the value is never shown)"
        )
    return value


HeaderValue = Annotated[SecretStr, BeforeValidator(_header_value)]


def _header_mapping(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError(
            f"expected a mapping of header name to value, found {type(value).__name__}"
        )
    if len(value) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers, found {len(value)}")
    return value


def _header_name(name: str) -> str:
    if not _TOKEN.fullmatch(name):
        raise ValueError(
            "not a header name: letters, digits and !#$%&'*+.^_`|~- only, at most 64 (found "
            f"{name[:64]!r})"
        )
    if name.lower() in _CLIENT_HEADERS:
        raise ValueError(f"the HTTP client sets {name} from the request itself (found {name})")
    return name


def _distinct_names(value: dict[str, SecretStr]) -> dict[str, SecretStr]:
    seen: dict[str, str] = {}
    for name in value:
        if name.lower() in seen:
            raise ValueError(f"header names ignore case, found {seen[name.lower()]} and {name}")
        seen[name.lower()] = name
    return value


HeaderName = Annotated[str, AfterValidator(_header_name)]
Headers = Annotated[
    dict[HeaderName, HeaderValue],
    BeforeValidator(_header_mapping),
    AfterValidator(_distinct_names),
]


def _status_codes(value: object) -> object:
    return [value] if isinstance(value, int) and not isinstance(value, bool) else value


StatusCode = Annotated[int, Field(ge=100, le=599, strict=True)]


def _renamed_to_path(value: object) -> None:
    raise ValueError("renamed to `path` (the same request path, e.g. /v1/heartbeat)")


class ProviderConfig(StrictModel):
    """One external AI provider to heartbeat: the request to send and the answer to accept."""

    name: LabelValue
    url: HttpUrl
    method: Annotated[Method, BeforeValidator(_upper)] = "GET"
    path: str = Field(default="/v1/heartbeat", pattern=r"^/[^\s#]*$", max_length=2000)
    # Kept only to say it was renamed: `path` goes with method, headers and body.
    heartbeat_path: Annotated[None, BeforeValidator(_renamed_to_path)] = Field(
        default=None, exclude=True, repr=False
    )
    # Secrets, each value a SecretStr: e.g. Authorization: Bearer ${PROVIDER_ALPHA_KEY}.
    headers: Headers = Field(default_factory=dict)
    body: JsonValue = None
    # None: any 2xx.
    expect_status: Annotated[list[StatusCode] | None, BeforeValidator(_status_codes)] = None
    expect_json: ExpectJson | None = None
    interval: Duration = 10.0
    # No answer in this long is down. As long as the breaker's call timeout (2 s): a provider
    # that answers within it still serves tasks, however slowly.
    timeout: Duration = 2.0
    # The seed's heartbeat budget ("超时 200ms 内返回 degrade 状态"): an answer slower than
    # this is degraded, not down -- one stalled moment on a loaded host must not page.
    slow_threshold: Duration = 0.2

    _timeout_fits = field_validator("timeout")(timeout_within_interval)
    _slow_fits = field_validator("slow_threshold")(slow_below_timeout)

    @field_validator("body")
    @classmethod
    def _body_needs_post(cls, value: JsonValue, info: ValidationInfo) -> JsonValue:
        method = info.data.get("method")
        if value is not None and method not in (None, "POST"):
            raise ValueError(f"a body is sent only with method POST, found method {method}")
        return value

    @field_validator("expect_status")
    @classmethod
    def _distinct_codes(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and not value:
            raise ValueError(
                "list at least one status code, or leave it out for any 2xx (found [])"
            )
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"each status code once, found {value}")
        return value

    @field_validator("expect_json")
    @classmethod
    def _json_needs_a_body(
        cls, value: ExpectJson | None, info: ValidationInfo
    ) -> ExpectJson | None:
        if value is not None and info.data.get("method") == "HEAD":
            raise ValueError("a HEAD answer has no body to check, found method HEAD")
        return value

    def accepts(self, status: int) -> bool:
        """Whether an answer with this status code counts as up."""
        return 200 <= status <= 299 if self.expect_status is None else status in self.expect_status

    def expected_statuses(self) -> str:
        """The accepted status codes, for a detail."""
        if self.expect_status is None:
            return "2xx"
        return " or ".join(str(code) for code in self.expect_status)
