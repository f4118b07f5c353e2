"""Scrapes of one URL must come from one registry: the PM2 cluster mistake, seen from outside.

Under PM2 cluster mode every worker has its own prom-client registry, and the cluster port
hands each scrape to whichever worker accepts it. Prometheus then sees one series that is
really several: counters fall and rise between scrapes, rate() reads every fall as a counter
reset, and every request rate, 5xx ratio and P95 is wrong by about the number of workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from obsctl.checks.exposition import Exposition, SeriesKey
from obsctl.checks.result import Check, Violation

START_TIME = "process_start_time_seconds"
EXAMPLES = 3
FIXES = (
    "serve one registry for the whole cluster: prom-client's AggregatorRegistry, whose"
    " clusterMetrics() sums every worker, on a port of its own (the PM2 master or one"
    " metrics process); or scrape every worker on its own port as its own target, each"
    " with a `worker` label, and let the rules sum over workers"
)
EXPECTED = "every scrape answered by one registry: one process, or one aggregating every worker"


def check_cluster(scrapes: Sequence[Exposition]) -> Check:
    """Flag counters that fall or vanish and start times that change between scrapes."""
    name = "one registry"
    summary = "counters never fall or vanish between scrapes, one process start time"
    if len(scrapes) < 2:
        return Check(name, summary, skipped="needs --scrapes 2 or more")
    violations = [
        *_start_times(scrapes),
        *_fallen(scrapes),
        *_vanished(scrapes),
    ]
    return Check(name, summary, tuple(violations))


def _start_times(scrapes: Sequence[Exposition]) -> list[Violation]:
    seen: list[tuple[float, ...]] = []
    for scrape in scrapes:
        family = scrape.family(START_TIME)
        seen.append(tuple(sorted(s.value for s in family.samples)) if family else ())
    present = [s for s in seen if s]
    if len(set(present)) < 2:
        return []
    changes = [i for i in range(1, len(seen)) if seen[i] != seen[i - 1]]
    back = any(seen[i] in seen[: i - 1] for i in changes)
    meaning = (
        "different processes answer the same URL in turn"
        if back
        else "a different process answered (a restart during the check, or another worker)"
    )
    shown = ", ".join(" ".join(f"{v:.0f}" for v in s) or "absent" for s in seen)
    return [
        Violation(
            "process_changed",
            START_TIME,
            f"{START_TIME} changes between scrapes: {meaning}",
            EXPECTED,
            f"{START_TIME} per scrape: {shown}",
            FIXES + ("" if back else "; if the app restarted meanwhile, check again"),
        )
    ]


def _show(key: SeriesKey) -> str:
    name, labels = key
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels))
    return f"{name}{{{inner}}}"


def _interest(key: SeriesKey) -> tuple[int, SeriesKey]:
    """Request counts and counters first: the series a reader recognises."""
    return (0 if key[0].endswith(("_count", "_total")) else 1, key)


def _fallen(scrapes: Sequence[Exposition]) -> list[Violation]:
    fallen: list[tuple[SeriesKey, float, float]] = []
    for before, after in pairwise(scrapes):
        was, now = before.monotonic(), after.monotonic()
        fallen += [(k, was[k], now[k]) for k in was if k in now and now[k] < was[k]]
    if not fallen:
        return []
    keys = {k for k, _, _ in fallen}
    fallen.sort(key=lambda f: _interest(f[0]))
    examples = "; ".join(f"{_show(k)} {a:g} -> {b:g}" for k, a, b in fallen[:EXAMPLES])
    return [
        Violation(
            "counter_went_down",
            "counters",
            f"{len(keys)} counter series went down between scrapes: several registries answer"
            " this URL in turn (PM2 cluster workers, each with its own prom-client registry);"
            " Prometheus takes each fall for a reset, so every rate, 5xx ratio and P95 is wrong",
            EXPECTED,
            examples,
            FIXES,
        )
    ]


def _vanished(scrapes: Sequence[Exposition]) -> list[Violation]:
    gone: list[SeriesKey] = []
    for before, after in pairwise(scrapes):
        now = after.monotonic()
        gone += [k for k in before.monotonic() if k not in now]
    if not gone:
        return []
    unique = sorted(set(gone), key=_interest)
    return [
        Violation(
            "series_vanished",
            "counters",
            f"{len(unique)} counter series disappeared between scrapes: the next scrape came"
            " from a registry that never counted them",
            EXPECTED,
            "; ".join(_show(k) for k in unique[:EXAMPLES]),
            FIXES,
        )
    ]
