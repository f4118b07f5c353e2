"""Run the exporter: build the probes, schedule them, serve HTTP, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from opentelemetry import trace
from opentelemetry.trace import Status as SpanStatus
from opentelemetry.trace import StatusCode

from obsctl.exporter import telemetry
from obsctl.exporter.collector import build_registry
from obsctl.exporter.config import ExporterConfig
from obsctl.exporter.probes.base import Probe, run_bounded
from obsctl.exporter.results import ResultStore
from obsctl.exporter.server import build_app
from obsctl.exporter.wiring import build_probes
from obsctl.httpserve import HttpCounters, serve_app

log = logging.getLogger(__name__)


async def run_and_record(probe: Probe, store: ResultStore, tracer: trace.Tracer) -> None:
    """One probe run inside a span; its outcome replaces the previous one in the store."""
    with tracer.start_as_current_span(f"probe {probe.kind}") as span:
        span.set_attribute("obsctl.probe", probe.kind)
        span.set_attribute("obsctl.target", probe.target)
        outcome = await run_bounded(probe)
        span.set_attribute("obsctl.status", outcome.status.value)
        span.set_attribute("obsctl.duration_seconds", outcome.duration_seconds)
        if outcome.reason:
            span.set_attribute("obsctl.reason", outcome.reason.value)
        if not outcome.success:
            span.set_status(SpanStatus(StatusCode.ERROR, outcome.reason or "down"))
    store.record(outcome)


def schedule(
    scheduler: AsyncIOScheduler, probes: Iterable[Probe], store: ResultStore, tracer: trace.Tracer
) -> None:
    """One interval job per probe, first run now, never two runs of one probe at once."""
    for probe in probes:
        store.register(probe.kind, probe.target, probe.interval_seconds)
        scheduler.add_job(
            run_and_record,
            "interval",
            args=(probe, store, tracer),
            seconds=probe.interval_seconds,
            id=f"{probe.kind}:{probe.target}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(probe.interval_seconds)),
            next_run_time=_now(),
        )


def _now() -> object:
    import datetime

    return datetime.datetime.now(datetime.UTC)


async def serve(config: ExporterConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until stop is set (or SIGINT/SIGTERM)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    telemetry.setup_sentry(config.sentry)
    provider = telemetry.setup_tracing(config.tracing)
    store = ResultStore()
    probes = build_probes(config)
    scheduler = AsyncIOScheduler()
    schedule(scheduler, probes, store, telemetry.tracer(provider))
    registry = build_registry(store)
    app = build_app(store, registry, config.health)
    host, port = config.host_port
    counters = HttpCounters.register(registry)
    runner = await serve_app(app, host, port, config.server, counters)
    scheduler.start()
    log.info("exporter listening on http://%s:%d with %d probes", host, port, len(probes))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await runner.cleanup()
        for probe in probes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.close(), timeout=2)
        if provider is not None:
            provider.shutdown()
        log.info("exporter stopped")
