"""The HTTP server side shared by the exporter and the relay: limits against slow or many clients.

aiohttp serves both. On its own it keeps an idle connection for an hour, waits forever for a
request that trickles in, has no cap on connections, and logs every malformed request with a
traceback (so anyone who can connect can fill the disk). `serve_app` starts an application
with all of that bounded:

- a connection that has not completed a request within ``idle_timeout`` (silent, or
  trickling its headers) is closed, and so is a kept-alive connection idle that long;
- handlers read bodies through `read_body`, which gives up after ``body_timeout``;
- beyond ``max_connections`` open connections, new ones are closed at once;
- a malformed request is logged as one line (and counted); a failing handler's traceback is
  logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field

from obsctl.config_types import Duration
from obsctl.configfile import StrictModel
from obsctl.metric_names import HttpMetric

log = logging.getLogger(__name__)
_READ_CHUNK = 64 * 1024
TRACEBACK_EVERY_SECONDS = 60.0


class ServerLimits(StrictModel):
    """How an obsctl server protects itself from slow or too many clients."""

    # Alertmanager and Prometheus reconnect at once; nobody needs an idle connection longer.
    idle_timeout: Duration = Field(default=15.0, le=3_600)
    body_timeout: Duration = Field(default=10.0, le=600)
    max_connections: int = Field(default=256, ge=1, le=65_536)


@dataclass(frozen=True)
class HttpCounters:
    """The guard's counters, in the registry of the server they guard."""

    bad_requests: Counter
    refused: Counter

    @staticmethod
    def register(registry: CollectorRegistry) -> HttpCounters:
        """Create both counters in `registry`."""
        return HttpCounters(
            Counter(
                HttpMetric.BAD_REQUESTS.removesuffix("_total"),
                "Malformed HTTP requests (logged as one line each).",
                registry=registry,
            ),
            Counter(
                HttpMetric.REFUSED_CONNECTIONS.removesuffix("_total"),
                "Connections closed at once because server.max_connections were open.",
                registry=registry,
            ),
        )


class BodyTooLarge(Exception):
    """A request body beyond the allowed size."""


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The body; BodyTooLarge past `limit` bytes, TimeoutError past `timeout` seconds."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async with asyncio.timeout(timeout):
        while chunk := await request.content.read(_READ_CHUNK):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


class _QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger: bad requests as one counted line, tracebacks rate-limited."""

    def __init__(self, on_bad_request: Callable[[], None]) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._on_bad_request = on_bad_request
        self._last_traceback = 0.0

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        """Called by aiohttp for a bad request or a failing handler."""
        error = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(error, HttpProcessingError):
            self._on_bad_request()
            peer = args[0] if args else "?"
            self.logger.warning("bad HTTP request from %s: %s", peer, str(error.message)[:120])
            return
        now = time.monotonic()
        if now - self._last_traceback >= TRACEBACK_EVERY_SECONDS:
            self._last_traceback = now
            self.logger.error(msg, *args, exc_info=exc_info, **kwargs)
        else:
            self.logger.error("%s (%s; traceback logged at most once a minute)",
                              str(msg) % args if args else msg, type(error).__name__)  # fmt: skip


def _nothing() -> None:
    return None


async def serve_app(
    app: web.Application,
    host: str,
    port: int,
    limits: ServerLimits,
    counters: HttpCounters | None = None,
) -> web.AppRunner:
    """Start `app` on host:port with `limits`; the caller cleans the runner up."""
    on_bad_request: Callable[[], None] = counters.bad_requests.inc if counters else _nothing
    on_refused: Callable[[], None] = counters.refused.inc if counters else _nothing
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=1.0,
        keepalive_timeout=limits.idle_timeout,
        logger=_QuietLogger(on_bad_request),
    )
    await runner.setup()
    server = runner.server
    assert server is not None
    admit = server.connection_made

    def capped(handler: Any, transport: asyncio.Transport) -> None:
        admit(handler, transport)
        if len(server.connections) > limits.max_connections:
            on_refused()
            # Not at once: aiohttp has yet to start this connection's task, which must see
            # the connection open before it sees it close.
            asyncio.get_running_loop().call_soon(handler.force_close)

    # aiohttp has no connection cap; its server is told of every connection here.
    server.connection_made = capped  # type: ignore[method-assign]
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
