"""Run the exporter: build the probes, schedule them, serve HTTP, stop cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
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
from obsctl.exporter.leader import Leadership, Role, SoleLeader, build_leadership
from obsctl.exporter.probes.base import Probe, ProbeOutcome, run_bounded
from obsctl.exporter.results import ResultStore
from obsctl.exporter.server import build_app
from obsctl.exporter.singletons import SINGLETON_KINDS
from obsctl.exporter.wiring import build_probes
from obsctl.httpserve import HttpCounters, serve_app

log = logging.getLogger(__name__)


async def run_and_record(probe: Probe, store: ResultStore, tracer: trace.Tracer) -> None:
    """One probe run inside a span; its outcome replaces the previous one in the store."""
    store.record(await traced_run(probe, tracer))


async def traced_run(probe: Probe, tracer: trace.Tracer) -> ProbeOutcome:
    """One bounded probe run inside a span."""
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
    return outcome


class SingletonRun:
    """Runs a singleton probe only while leading, and keeps an outcome only under its lease."""

    def __init__(self, probe: Probe, leadership: Leadership) -> None:
        self.probe = probe
        self.leadership = leadership
        self.token: int | None = None

    async def run(self, store: ResultStore, tracer: trace.Tracer) -> None:
        """Run once if leading; a follower's store holds no outcome of this probe."""
        if not self.leadership.leading():
            store.reset(self.probe.kind, self.probe.target)
            return
        token = self.leadership.standing().token
        take_over = getattr(self.probe, "take_over", None)
        if token != self.token and take_over is not None:
            take_over(token)  # a new lease: continue from the shared state, not from memory
        self.token = token
        outcome = await traced_run(self.probe, tracer)
        # The lease may have lapsed during the run: its outcome then belongs to no leader.
        if self.leadership.leading(token):
            store.record(outcome)
        else:
            store.reset(self.probe.kind, self.probe.target)


def job_id(probe: Probe) -> str:
    """The scheduler job of a probe."""
    return f"{probe.kind}:{probe.target}"


def schedule(
    scheduler: AsyncIOScheduler,
    probes: Iterable[Probe],
    store: ResultStore,
    tracer: trace.Tracer,
    leadership: Leadership | None = None,
) -> None:
    """One interval job per probe, first run now, never two runs of one probe at once."""
    leadership = leadership or SoleLeader()
    for probe in probes:
        store.register(probe.kind, probe.target, probe.interval_seconds)
        run: object = run_and_record
        args: tuple[object, ...] = (probe, store, tracer)
        if probe.kind in SINGLETON_KINDS:
            run, args = SingletonRun(probe, leadership).run, (store, tracer)
        scheduler.add_job(
            run,
            "interval",
            args=args,
            seconds=probe.interval_seconds,
            id=job_id(probe),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(probe.interval_seconds)),
            next_run_time=_now(),
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def schedule_election(
    scheduler: AsyncIOScheduler, leadership: Leadership, probes: Iterable[Probe]
) -> None:
    """Campaign and renew every lease/3; a new leader runs its singleton probes at once."""
    if not leadership.enabled:
        return
    singletons = [job_id(p) for p in probes if p.kind in SINGLETON_KINDS or p.kind == "mysql"]
    every = getattr(leadership, "renew_every", 10.0)

    async def campaign() -> None:
        was = leadership.leading()
        standing = await leadership.tick()
        if standing.role is Role.LEADER and not was:
            for job in singletons:
                scheduler.modify_job(job, next_run_time=_now())

    scheduler.add_job(
        campaign,
        "interval",
        seconds=every,
        id="leader-election",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(every)),
        next_run_time=_now(),
    )


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
    leadership = build_leadership(config.leader, config.lease_url)
    probes = build_probes(config, leadership)
    scheduler = AsyncIOScheduler()
    schedule(scheduler, probes, store, telemetry.tracer(provider), leadership)
    schedule_election(scheduler, leadership, probes)
    instance = config.leader.instance if leadership.enabled else None
    registry = build_registry(store, leadership, instance)
    app = build_app(store, registry, config.health, leadership)
    host, port = config.host_port
    counters = HttpCounters.register(registry)
    runner = await serve_app(app, host, port, config.server, counters)
    scheduler.start()
    log.info("exporter listening on http://%s:%d with %d probes", host, port, len(probes))
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        await leadership.release()
        await runner.cleanup()
        for probe in probes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(probe.close(), timeout=2)
        if provider is not None:
            provider.shutdown()
        log.info("exporter stopped")
