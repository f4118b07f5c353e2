"""Run a fake's aiohttp app in the foreground until SIGTERM or SIGINT."""

import logging
import sys

from aiohttp import web

# Handlers still hanging in a "timeout" fault are cancelled after this, so SIGTERM is prompt.
SHUTDOWN_GRACE_SECONDS = 0.5


def setup_logging() -> None:
    """Send the fake's own log lines to stderr, one per event."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def serve(app: web.Application, host: str, port: int, label: str) -> None:
    """Serve `app` on host:port and return (exit status 0) once a stop signal arrives."""
    log = logging.getLogger(label)

    async def announce(_: web.Application) -> None:
        log.info("serving on http://%s:%d", host, port)

    app.on_startup.append(announce)
    # No access log: request lines carry access tokens and signatures.
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        access_log=None,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        handle_signals=True,
    )
    log.info("stopped")
