"""The exporter's own errors to Sentry, and an OpenTelemetry span around every probe run.

Both SDKs are imported only when configured: together they cost ~20 MB of resident memory,
which a sidecar with them switched off should not pay.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from opentelemetry import trace

from obsctl import __version__
from obsctl.exporter.config import SentryConfig, TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)


def setup_sentry(config: SentryConfig) -> bool:
    """Send unexpected errors (ERROR logs and uncaught exceptions) to Sentry; off without a DSN."""
    if config.dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.logging import LoggingIntegration

    sentry_sdk.init(
        dsn=config.dsn.get_secret_value(),
        environment=config.environment,
        release=f"obsctl@{__version__}",
        traces_sample_rate=0.0,
        # Frame locals of a probe can hold DSNs and keys; never ship them.
        include_local_variables=False,
        integrations=[LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
    )
    return True


def setup_tracing(config: TracingConfig) -> TracerProvider | None:
    """Export probe spans over OTLP/HTTP when an endpoint is configured."""
    if not config.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": config.service_name, "service.version": __version__}
        )
    )
    endpoint = config.otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    exporter = OTLPSpanExporter(endpoint=endpoint, timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider


def tracer(provider: TracerProvider | None) -> trace.Tracer:
    """The tracer for probe spans (a no-op one when tracing is off)."""
    if provider is None:
        return trace.NoOpTracer()
    return provider.get_tracer("obsctl.exporter", __version__)
