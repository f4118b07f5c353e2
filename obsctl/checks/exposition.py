"""One scrape of a `/metrics` endpoint, parsed into families named as Prometheus stores them.

prometheus_client's text parser renames every counter's samples to the OpenMetrics form
(`foo` becomes `foo_total`), which hides exactly the mistake a check must see: Prometheus
stores the sample under the name it was served with. So a counter's name is taken from its
`# TYPE` line, and its samples keep that name.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families

OPENMETRICS = "application/openmetrics-text"
# The text format first: it is what prom-client serves, and it keeps a counter's served name.
ACCEPT = f"text/plain;version=0.0.4;q=1,{OPENMETRICS};version=1.0.0;q=0.5,*/*;q=0.1"
_TYPE_LINE = re.compile(r"^#\s+TYPE\s+(\S+)\s+(\S+)", re.MULTILINE)
MAX_BODY_BYTES = 32 * 1024 * 1024
# The samples of a histogram or summary that only ever go up in one process.
MONOTONIC_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


class ScrapeError(Exception):
    """The endpoint could not be scraped or did not answer Prometheus metrics."""


@dataclass(frozen=True)
class Sample:
    """One sample as Prometheus stores it."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Family:
    """One metric family; `name` is the name queries use (a counter's with `_total` if served)."""

    name: str
    type: str  # counter, gauge, histogram, summary, unknown, ...
    samples: tuple[Sample, ...]


SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Exposition:
    """Every family of one scrape, by name, and when it was taken."""

    families: Mapping[str, Family]
    content_type: str
    at: float

    def family(self, name: str) -> Family | None:
        """The family queries reach by this name, if any."""
        return self.families.get(name)

    def monotonic(self) -> dict[SeriesKey, float]:
        """Every counter-like series (counters, histogram and summary parts) and its value."""
        values: dict[SeriesKey, float] = {}
        for family in self.families.values():
            for s in family.samples:
                if _monotonic(family.type, s.name):
                    values[(s.name, frozenset(s.labels.items()))] = s.value
        return values


def _monotonic(family_type: str, sample: str) -> bool:
    if family_type == "counter":
        return not sample.endswith("_created")
    return sample.endswith(MONOTONIC_SUFFIXES.get(family_type, ()))


def redact(url: str) -> str:
    """The URL without user info (a password) and without its query (a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def fetch(url: str, headers: Mapping[str, str], timeout: float) -> Exposition:
    """GET url and parse it; ScrapeError says why it is not a usable metrics endpoint."""
    shown = redact(url)
    try:
        # A connection of its own per scrape: a kept-alive one stays with one PM2 worker and
        # hides the others, until Prometheus's own connection moves on to the next.
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.get(url, headers={"Accept": ACCEPT, **headers})
    except httpx.TimeoutException:
        raise ScrapeError(f"{shown}: no answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise ScrapeError(f"{shown}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        auth = response.status_code in (401, 403)
        hint = " (does it need --header 'Authorization: ...'?)" if auth else ""
        raise ScrapeError(f"{shown}: answered HTTP {response.status_code}{hint}")
    if len(response.content) > MAX_BODY_BYTES:
        raise ScrapeError(f"{shown}: body of {len(response.content)} bytes is not a metrics page")
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(("text/html", "application/json")):
        raise ScrapeError(f"{shown}: answered {content_type}, not Prometheus metrics")
    try:
        return parse(response.text, content_type)
    except ValueError as exc:
        raise ScrapeError(f"{shown}: not a Prometheus exposition: {exc}") from None


def parse(text: str, content_type: str = "text/plain", at: float | None = None) -> Exposition:
    """Parse the text or OpenMetrics format; ValueError on text that is neither."""
    if content_type.startswith(OPENMETRICS):
        parsed: Iterable[Metric] = openmetrics_families(text)  # type: ignore[no-untyped-call]
        families = [_from_openmetrics(f) for f in parsed]
    else:
        declared = dict(_TYPE_LINE.findall(text))
        families = [_from_text(f, declared) for f in text_families(text)]
    by_name = {f.name: f for f in families}
    return Exposition(MappingProxyType(by_name), content_type, time.time() if at is None else at)


def _samples(metric: Metric, rename: Mapping[str, str] | None = None) -> tuple[Sample, ...]:
    rename = rename or {}
    return tuple(
        Sample(rename.get(s.name, s.name), MappingProxyType(dict(s.labels)), float(s.value))
        for s in metric.samples
    )


def _from_text(metric: Metric, declared: Mapping[str, str]) -> Family:
    if metric.type != "counter":
        return Family(metric.name, metric.type, _samples(metric))
    total = f"{metric.name}_total"
    if declared.get(total) == "counter":
        return Family(total, "counter", _samples(metric))
    # Served as `# TYPE foo counter` / `foo 1`: the parser added `_total`, Prometheus did not.
    return Family(metric.name, "counter", _samples(metric, {total: metric.name}))


def _from_openmetrics(metric: Metric) -> Family:
    # OpenMetrics counters always carry `_total` on their samples; `_created` is not a value.
    name = f"{metric.name}_total" if metric.type == "counter" else metric.name
    samples = tuple(s for s in _samples(metric) if not s.name.endswith("_created"))
    return Family(name, metric.type, samples)


def scrape_many(
    url: str, headers: Mapping[str, str], timeout: float, count: int, interval: float
) -> Sequence[Exposition]:
    """`count` scrapes, `interval` seconds apart."""
    scrapes: list[Exposition] = []
    for index in range(count):
        if index:
            time.sleep(interval)
        scrapes.append(fetch(url, headers, timeout))
    return scrapes
