"""`obsctl check app`: hold a live `/metrics` of the API to the metric contract.

Each metric of obsctl.mixin.contract must be there with its type, its labels and, for latency
histograms, a bucket at every latency threshold of the config; every counter must end in
`_total`; no label may hold raw URLs or ids or grow without bound; and several scrapes of
one URL must come from one registry (obsctl.checks.cluster).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from obsctl.checks.cluster import check_cluster
from obsctl.checks.exposition import Exposition, Family, Sample, redact, scrape_many
from obsctl.checks.labels import raw_value_reason
from obsctl.checks.result import Check, Report, Violation
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import (
    BUCKET_LABELS,
    CONTRACT,
    LABEL_VALUE_PATTERNS,
    ApiLabel,
    ApiMetric,
    MetricSpec,
    MetricType,
    RequiredBucket,
    required_buckets,
)

DEFAULT_MAX_LABEL_VALUES = 100
EXAMPLES = 3
REFERENCE = "obsctl/stack/demo_platform/src/metrics.js"
_DEFAULT_METRICS = "call prom-client's collectDefaultMetrics({ register }), which exposes it"
_HOW: Mapping[ApiMetric, str] = {
    ApiMetric.HTTP_DURATION: (
        "observe every /api request in a prom-client Histogram labelled route and status_code"
        f" (the demo's httpMiddleware in {REFERENCE})"
    ),
    ApiMetric.CPU: _DEFAULT_METRICS,
    ApiMetric.EVENT_LOOP_LAG: _DEFAULT_METRICS,
    ApiMetric.RESIDENT_MEMORY: _DEFAULT_METRICS,
    ApiMetric.HEAP_USED: _DEFAULT_METRICS,
    ApiMetric.EVENT_LOOP_LAG_P99: _DEFAULT_METRICS + " (on Node.js with perf_hooks)",
    ApiMetric.START_TIME: (
        _DEFAULT_METRICS + "; behind a PM2/cluster AggregatorRegistry give it the aggregator"
        f" 'max' (prom-client omits it there), as the demo's {REFERENCE} does"
    ),
    ApiMetric.HEAP_LIMIT: (
        "expose a prom-client Gauge read at scrape time from"
        f" v8.getHeapStatistics().heap_size_limit (the demo's heapLimit in {REFERENCE})"
    ),
    ApiMetric.RATE_LIMIT_REQUESTS: (
        "count each check of each rate limiter in a prom-client Counter labelled limiter and"
        " outcome (allowed or rejected), zero-filled (the demo's src/rate-limit.js)"
    ),
    ApiMetric.RATE_LIMIT_ERRORS: (
        "count the limiter checks whose store failed, e.g. in rate-limiter-flexible's"
        " insuranceLimiter (the demo's CountingInsurance in src/rate-limit.js)"
    ),
    ApiMetric.CONFIG_CACHE_LOOKUPS: (
        "count each feature config lookup once per layer asked (local LRU, then Redis) as hit,"
        " miss or null (a cached absence), zero-filled (the demo's src/config-cache.js)"
    ),
    ApiMetric.CONFIG_CACHE_ORIGIN_DURATION: (
        "time each database load after a miss in both layers in a prom-client Histogram"
        " (the demo's src/config-cache.js)"
    ),
    ApiMetric.CONFIG_CACHE_INVALIDATIONS: (
        "count each config.invalidate message the process's subscriber receives"
        " (the demo's src/config-cache.js)"
    ),
    ApiMetric.CONFIG_CACHE_SUBSCRIBED: (
        "set a Gauge to 1 while the process is subscribed to config.invalidate, 0 when its"
        " subscriber connection closes (the demo's src/config-cache.js)"
    ),
    **dict.fromkeys(
        (ApiMetric.JOB_RETRIES, ApiMetric.JOBS_DEAD_LETTERED),
        "give the task jobs attempts and a back-off, count each attempt BullMQ will run again and"
        " each job whose last attempt failed (added to a paused dead-letter queue), zero-filled,"
        " as the demo's obsctl/stack/demo_platform/src/worker.js and src/dead-letter.js do",
    ),
    **dict.fromkeys(
        (
            ApiMetric.BREAKER_STATE,
            ApiMetric.BREAKER_OPENS,
            ApiMetric.BREAKER_CALLS,
            ApiMetric.BREAKER_FALLBACKS,
        ),
        "wrap each provider call in an opossum CircuitBreaker and count its events (open,"
        " halfOpen, close, success, failure, reject) as the demo's"
        " obsctl/stack/demo_platform/src/breakers.js does",
    ),
    **dict.fromkeys(
        (
            ApiMetric.POOL_IN_USE,
            ApiMetric.POOL_PENDING,
            ApiMetric.POOL_AVAILABLE,
            ApiMetric.POOL_MAX,
        ),
        f"expose a prom-client Gauge per pool figure, read at scrape time (the demo's poolGauge in"
        f" {REFERENCE})",
    ),
}
_LABEL_FIX: Mapping[ApiLabel, str] = {
    ApiLabel.ROUTE: (
        "label each request with its route pattern (Express: req.baseUrl + req.route.path, as"
        " the demo's tagRoute does), or 'unmatched' when no route matched"
    ),
    ApiLabel.STATUS_CODE: "label each request with its numeric status: String(res.statusCode)",
    ApiLabel.POOL: 'label each pool gauge with the pool\'s name, e.g. {pool="platform"}',
    ApiLabel.PROVIDER: 'label each breaker series with the provider it guards: {provider="alpha"}',
    ApiLabel.BREAKER_STATE: (
        "one series per state (closed, open, half_open), 1 for the current one and 0 for the others"
    ),
    ApiLabel.LIMITER: "label each check with the limiter's fixed name (global, ip, ...)",
    ApiLabel.OUTCOME: (
        "label each limiter check allowed or rejected, and count each breaker call once as"
        " success, failure, timeout or rejected"
    ),
    ApiLabel.QUEUE: (
        'label each retry and dead letter with the job\'s work queue: {queue="matting"}'
    ),
    ApiLabel.REASON: (
        "label each retry and dead letter with a bounded reason (the task's error code, or"
        " internal), never the error message"
    ),
    ApiLabel.CACHE_LAYER: "label each config cache lookup with the layer asked: local or redis",
    ApiLabel.CACHE_RESULT: "label each config cache lookup hit, miss or null (a cached absence)",
}


def run(
    url: str,
    config: MixinConfig,
    config_source: str,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
    scrapes: int = 3,
    interval: float = 1.0,
    max_label_values: int = DEFAULT_MAX_LABEL_VALUES,
) -> Report:
    """Scrape url `scrapes` times and check the contract; ScrapeError when it cannot be read."""
    taken = scrape_many(url, headers or {}, timeout, scrapes, interval)
    spacing = f"{scrapes} scrapes {interval:g}s apart" if scrapes > 1 else "1 scrape"
    context = f"thresholds from {config_source}; {spacing}"
    checks = check_exposition(taken, config, max_label_values)
    return Report("check app", redact(url), context, checks)


def check_exposition(
    scrapes: Sequence[Exposition], config: MixinConfig, max_label_values: int
) -> list[Check]:
    """Every check on scrapes of one endpoint: the contract on the first, the cluster on all."""
    first = scrapes[0]
    buckets = required_buckets(config)
    checks = [check_metric(spec, first, buckets) for spec in CONTRACT]
    checks.append(check_counter_names(first))
    checks.append(check_label_values(first, max_label_values))
    checks.append(check_cluster(scrapes))
    return checks


def _described(spec: MetricSpec) -> str:
    """`histogram {route, status_code}`, `counter`."""
    return f"{spec.type} {{{', '.join(spec.labels)}}}" if spec.labels else spec.type.value


def _summary(spec: MetricSpec, buckets: Sequence[RequiredBucket]) -> str:
    text = _described(spec)
    mine = [b for b in buckets if b.metric is spec.name]
    if mine:
        text += ", buckets at " + ", ".join(f"{b.seconds:g}s ({b.alert})" for b in mine)
    return text


def check_metric(
    spec: MetricSpec, exposition: Exposition, buckets: Sequence[RequiredBucket]
) -> Check:
    """One contract metric: present, of its type, labelled, and bucketed at the thresholds."""
    summary = _summary(spec, buckets)
    family = exposition.family(spec.name)
    if family is None and spec.feature:
        note = (
            f"not exposed: without {spec.feature} on the platform,"
            f" {spec.needed_by() or 'nothing'} stays empty (no alert can fire); to watch them,"
            f" {_HOW[spec.name]}"
        )
        return Check(spec.name, summary, warnings=(note,))
    if family is None:
        return Check(spec.name, summary, (_missing(spec, exposition),))
    if family.type != spec.type:
        found = f"a {family.type} named {family.name}"
        wrong = Violation(
            "wrong_type",
            spec.name,
            f"wrong type: {family.type}, not {spec.type}",
            f"a {spec.type}: {spec.needed_by()} read it with {_reads(spec.type)}",
            found,
            f"serve it as a {spec.type}: {_HOW[spec.name]}",
        )
        return Check(spec.name, summary, (wrong,))
    if not family.samples:
        note = (
            f"not verified: {spec.name} has no series yet (nothing observed since the app"
            " started); send it a request and check again"
        )
        return Check(spec.name, summary, warnings=(note,))
    violations = [*_label_violations(spec, family), *_bucket_violations(spec, family, buckets)]
    return Check(spec.name, summary, tuple(violations))


def _reads(kind: MetricType) -> str:
    return {
        MetricType.HISTOGRAM: "histogram_quantile() over its _bucket series and rate() of _count",
        MetricType.COUNTER: "rate()",
        MetricType.GAUGE: "its current value",
    }[kind]


def _missing(spec: MetricSpec, exposition: Exposition) -> Violation:
    near = _near(spec, exposition)
    found = "no family of that name"
    if near:
        found += "; found instead: " + ", ".join(f"{f.name} ({f.type})" for f in near)
    fix = _HOW[spec.name]
    if any(f.name == spec.name.removesuffix("_total") and f.type == "counter" for f in near):
        fix = (
            f"serve the counter as {spec.name}: Prometheus stores a counter under the name it"
            " is served with"
        )
    elif any(f.name.startswith(f"{spec.name}_") for f in near):
        fix = f"declare `# TYPE {spec.name} {spec.type}` (a prom-client {spec.type.title()})"
    return Violation(
        "missing_metric",
        spec.name,
        f"missing metric {spec.name}",
        f"a {_described(spec)}, read by {spec.needed_by()}",
        found,
        fix,
    )


def _near(spec: MetricSpec, exposition: Exposition) -> list[Family]:
    stem = spec.name.removesuffix("_total")
    return [
        f
        for f in exposition.families.values()
        if f.name != spec.name
        and (f.name.removesuffix("_total") == stem or f.name.startswith(f"{spec.name}_"))
    ]


def _show(sample: Sample) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sample.labels.items())
    return f"{sample.name}{{{inner}}}"


def _label_violations(spec: MetricSpec, family: Family) -> Iterator[Violation]:
    for label in spec.labels:
        # An empty value is no label at all to Prometheus.
        without = [s for s in family.samples if not s.labels.get(label)]
        if without:
            yield Violation(
                "missing_label",
                f"{spec.name}.{label}",
                f"missing label {label} on {spec.name}",
                f"every series labelled {label}: {spec.needed_by()} group or filter by it",
                f"{len(without)} of {len(family.samples)} samples without it,"
                f" e.g. {_show(without[0])}",
                _LABEL_FIX[label],
            )
            continue
        pattern = LABEL_VALUE_PATTERNS.get(label)
        if pattern is None:
            continue
        bad = sorted({v for s in family.samples if not re.fullmatch(pattern, v := s.labels[label])})
        if bad:
            yield Violation(
                "bad_label_value",
                f"{spec.name}.{label}",
                f"label {label} of {spec.name} holds values the rules cannot match",
                f"values matching {pattern}, the values the rules select",
                ", ".join(repr(v) for v in bad[:EXAMPLES]),
                _LABEL_FIX[label],
            )


def _bucket_violations(
    spec: MetricSpec, family: Family, buckets: Sequence[RequiredBucket]
) -> Iterator[Violation]:
    bounds_by_series: dict[frozenset[tuple[str, str]], set[float]] = {}
    for s in family.samples:
        if s.name == f"{spec.name}_bucket" and "le" in s.labels:
            key = frozenset((k, v) for k, v in s.labels.items() if k != "le")
            bounds_by_series.setdefault(key, set()).add(float(s.labels["le"]))
    if not bounds_by_series:
        return
    for bucket in (b for b in buckets if b.metric is spec.name):
        lacking = [b for b in bounds_by_series.values() if not _has(b, bucket.seconds)]
        if not lacking:
            continue
        finite = sorted(x for x in lacking[0] if math.isfinite(x))
        below = max((x for x in finite if x < bucket.seconds), default=0.0)
        above = min((x for x in finite if x > bucket.seconds), default=math.inf)
        yield Violation(
            "missing_bucket",
            spec.name,
            f'missing bucket le="{bucket.seconds:g}" on {spec.name}, so {bucket.alert}'
            " cannot be exact",
            f"a bucket boundary at {bucket.seconds:g}s: {bucket.alert} compares a quantile with"
            f" thresholds.{bucket.threshold} = {bucket.seconds:g}s",
            f"buckets {', '.join(f'{x:g}' for x in finite)} ({len(lacking)} of"
            f" {len(bounds_by_series)} series): histogram_quantile interpolates between"
            f" {below:g} and {above:g}, so the alert fires at the wrong latency",
            f"add {bucket.seconds:g} to the histogram's buckets (the demo's HTTP_BUCKETS in"
            f" {REFERENCE})",
        )


def _has(bounds: set[float], seconds: float) -> bool:
    return any(math.isclose(b, seconds, rel_tol=1e-9) for b in bounds)


def check_counter_names(exposition: Exposition) -> Check:
    """Every counter is served with a `_total` name, as Prometheus conventions expect."""
    violations = tuple(
        Violation(
            "counter_without_total",
            f.name,
            f"counter {f.name} has no _total suffix",
            f"a counter named {f.name}_total",
            f"`# TYPE {f.name} counter`: Prometheus stores it as {f.name}",
            f"rename it {f.name}_total (prom-client: new Counter({{ name: '{f.name}_total' }}))",
        )
        for f in exposition.families.values()
        if f.type == "counter" and not f.name.endswith("_total")
    )
    return Check("counter names", "every counter ends in _total", violations)


def check_label_values(exposition: Exposition, max_values: int) -> Check:
    """No label holds raw URLs, query strings or ids, or more than max_values distinct values."""
    violations: list[Violation] = []
    for family in exposition.families.values():
        values: dict[str, set[str]] = {}
        for s in family.samples:
            for label, value in s.labels.items():
                if label not in BUCKET_LABELS:
                    values.setdefault(label, set()).add(value)
        for label, seen in sorted(values.items()):
            violations += _value_violations(family.name, label, seen, max_values)
    summary = f"no raw URLs, query strings or ids, at most {max_values} values per label"
    return Check("label values", summary, tuple(violations))


def _value_violations(metric: str, label: str, seen: set[str], max_values: int) -> list[Violation]:
    raw = sorted((v, r) for v in seen if (r := raw_value_reason(v)))
    fix = (
        "label with the route pattern (Express: req.baseUrl + req.route.path, e.g."
        " /api/tasks/:id), never req.url, req.path or req.originalUrl"
        if label == ApiLabel.ROUTE or any(v.startswith("/") for v, _ in raw)
        else "label with a bounded name, never a raw value from the request"
    )
    if raw:
        examples = "; ".join(f"{v!r}: {r}" for v, r in raw[:EXAMPLES])
        return [
            Violation(
                "raw_label_value",
                f"{metric}.{label}",
                f"label {label} of {metric} holds raw URLs or ids",
                "route patterns or other bounded names: each distinct value is a new series",
                f"{len(raw)} of {len(seen)} values, e.g. {examples}",
                fix,
            )
        ]
    if len(seen) > max_values:
        examples = ", ".join(repr(v) for v in sorted(seen)[:EXAMPLES])
        return [
            Violation(
                "too_many_label_values",
                f"{metric}.{label}",
                f"label {label} of {metric} has {len(seen)} distinct values",
                f"at most {max_values} (--max-label-values): each value is a new series",
                f"{len(seen)} values, e.g. {examples}",
                fix,
            )
        ]
    return []


def source_name(path: Path) -> str:
    """A config path for people: relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
