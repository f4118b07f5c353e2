"""${…} references inside provider header values, and header values kept out of config errors.

The config loader resolves a value that is one whole reference (`${KEY}`). A header usually wraps
the key in a scheme (`Authorization: Bearer ${PROVIDER_ALPHA_KEY}`), so the references inside
header values are resolved here, by the loader's own resolver and with its problems.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from obsctl.configfile import MISSING, REDACTED, resolve_references

_INNER = re.compile(r"\$\{[^}]*\}")


@dataclass(frozen=True)
class Unresolved:
    """A header value whose reference did not resolve: the problem, as the loader states it."""

    problem: str

    def __repr__(self) -> str:
        return REDACTED


def _headers(raw: Mapping[str, Any]) -> list[tuple[int, dict[Any, Any]]]:
    providers = raw.get("providers")
    if not isinstance(providers, list):
        return []
    return [
        (index, provider["headers"])
        for index, provider in enumerate(providers)
        if isinstance(provider, dict) and isinstance(provider.get("headers"), dict)
    ]


def resolve_header_references(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Resolve every ${…} inside the header values of `raw["providers"]`, in place."""
    for index, headers in _headers(raw):
        for name, value in headers.items():
            if isinstance(value, str) and _INNER.search(value):
                headers[name] = _resolve(value, ("providers", index, "headers", str(name)), environ)


def _resolve(value: str, where: tuple[str | int, ...], environ: Mapping[str, str]) -> Any:
    problems: list[str] = []
    key = f"providers[{where[1]}].headers.{where[3]}"

    def one(match: re.Match[str]) -> str:
        reference = match.group(0)
        resolved = resolve_references(reference, where, environ, problems)
        if resolved is MISSING:
            return ""
        if resolved == "":
            problems.append(f"{key}: {reference} resolves to an empty value")
        return str(resolved)

    text = _INNER.sub(one, value)
    return Unresolved(problems[0]) if problems else text


def without_header_values(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw config with each provider header value replaced, for error messages."""
    providers = raw.get("providers")
    if not isinstance(providers, list):
        return raw
    redacted = copy.deepcopy(raw)
    for provider in redacted["providers"]:
        if not isinstance(provider, dict) or "headers" not in provider:
            continue
        headers = provider["headers"]
        if isinstance(headers, dict):
            provider["headers"] = {name: REDACTED for name in headers}
        else:
            provider["headers"] = REDACTED
    return redacted
