"""The provider fake's API key check: a /v1 call without the key is answered 401, as by a real one.

The key is accepted the two ways real AI providers take one: `Authorization: Bearer <key>` (most
of them) or `X-API-Key: <key>`. Result images stay open: a real provider hands out their URLs
to fetch without the key (a signed CDN link).
"""

import hmac
import logging

from aiohttp import web
from aiohttp.typedefs import Handler

API_KEY = web.AppKey("api_key", str)
_OPEN_PREFIXES = ("/v1/results/",)

log = logging.getLogger("provider")


def presented_key(request: web.Request) -> str | None:
    """The key a request carries, from Authorization: Bearer or X-API-Key."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.headers.get("X-API-Key") or None


@web.middleware
async def require_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a ``/v1`` call that does not carry the provider's key."""
    if not request.path.startswith("/v1/") or request.path.startswith(_OPEN_PREFIXES):
        return await handler(request)
    key = presented_key(request)
    if key is not None and hmac.compare_digest(key.encode(), request.app[API_KEY].encode()):
        return await handler(request)
    why = "no key" if key is None else "a wrong key"
    # Never the key itself: only that one was missing or wrong.
    log.warning("refused %s %s: %s", request.method, request.path, why)
    return web.json_response(
        {"error": "unauthorized", "message": f"{why}: send Authorization: Bearer <key>"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="provider"'},
    )
