"""Ask Prometheus or Alertmanager to re-read its config: POST to its /-/reload endpoint."""

from __future__ import annotations

import httpx


class ReloadError(RuntimeError):
    """The server did not reload; `answered` is False when it could not be reached at all."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


def reload(url: str, timeout: float = 10.0) -> None:
    """POST url (a server's /-/reload); ReloadError saying why when it did not reload.

    A server that refuses a config keeps running with its previous one.
    """
    try:
        response = httpx.post(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ReloadError(f"unreachable: {exc}", answered=False) from None
    if response.status_code != 200:
        raise ReloadError(response.text.strip() or f"HTTP {response.status_code}", answered=True)
