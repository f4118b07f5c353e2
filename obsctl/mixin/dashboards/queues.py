"""Queues dashboard: BullMQ jobs per state and queue, backlog, oldest waiting job, throughput."""

from __future__ import annotations

from obsctl.metric_names import BullMQMetric, BusinessMetric
from obsctl.mixin import signals
from obsctl.mixin.config import MixinConfig
from obsctl.mixin.contract import DEAD_LETTER_QUEUE, ApiMetric
from obsctl.mixin.dashboards.panels import (
    RATE,
    Board,
    Fault,
    Line,
    Target,
    query_variable,
)
from obsctl.mixin.promql import series
from obsctl.mixin.rules import DEAD_LETTER_WINDOW, DEAD_LETTERED

KEY = "queues"
WORK = signals.WORK_QUEUES


def backlog(exporter: str, queue: str = 'queue=~"$queue"') -> str:
    """Waiting jobs per queue, the number the QueueBacklogHigh threshold applies to.

    A paused queue's jobs are `paused`, not waiting: they stay visible in "Jobs per state".
    """
    return signals.waiting_jobs(exporter, "queue", queue)


def _dead_letters(board: Board, config: MixinConfig, queue: str) -> None:
    """BE-ASYNC-001: the task jobs' retries and what ends in the dead-letter queue."""
    api, exp = config.selectors.api, config.selectors.exporter
    board.row("Retries and dead letters")
    board.timeseries(
        f"Dead letters per queue ({DEAD_LETTER_WINDOW})",
        f"Task jobs whose every attempt failed over the last {DEAD_LETTER_WINDOW}, moved to the "
        f"{DEAD_LETTER_QUEUE} queue (recorded); the dashed line is the DeadLetterJobsGrowing "
        "threshold.",
        "short",
        [Target(f"max by (queue) ({series(DEAD_LETTERED, queue)})", "{{queue}}")],
        line=Line(config.thresholds.dead_letter_jobs),
        width=8,
        min_value=0,
    )
    board.timeseries(
        "Retries by queue and reason",
        "Failed attempts BullMQ runs again after a back-off (1 s, then 2 s), by the task's "
        "error code; retries that then succeed never become dead letters.",
        "ops",
        [
            Target(
                f"sum by (queue, reason) (rate({series(ApiMetric.JOB_RETRIES, api, queue)}"
                f"[{RATE}]))",
                "{{queue}} {{reason}}",
            )
        ],
        width=8,
        min_value=0,
    )
    dead = series(BullMQMetric.JOBS, exp, f'queue="{DEAD_LETTER_QUEUE}"')
    board.timeseries(
        "Dead-letter queue depth",
        f"Jobs held in the {DEAD_LETTER_QUEUE} queue (paused, no worker: they wait for a "
        "person, GET /admin/dead-letters lists them).",
        "short",
        [Target(f"sum ({dead})", "dead letters")],
        width=8,
        min_value=0,
    )


def build(config: MixinConfig) -> Board:
    """The queues dashboard."""
    exp = config.selectors.exporter
    limits = config.thresholds
    board = Board(
        config,
        KEY,
        "obsctl / Queues",
        "BullMQ queues (one per feature), read from Redis by the obsctl exporter.",
        variables=[
            # The work queues: the dead-letter queue has its own panel and no feature's tasks.
            query_variable("queue", "Queue", series(BullMQMetric.JOBS, exp, WORK), "queue"),
        ],
    )
    board.link_to("overview", "Overview")
    board.link_to("business", "Business")
    queue = 'queue=~"$queue"'

    board.row("Backlog")
    board.timeseries(
        "Backlog by queue",
        "Jobs ready and waiting for a worker; the dashed line is the QueueBacklogHigh "
        "threshold. Paused and prioritized jobs are in Jobs per state per queue.",
        "short",
        [Target(backlog(exp), "{{queue}}")],
        line=Line(limits.queue_backlog_jobs),
        min_value=0,
    )
    board.timeseries(
        "Oldest waiting job age",
        "How long the job that has waited longest has been ready to run; the dashed line is "
        "the QueueStalled threshold.",
        "s",
        [
            Target(
                f"max by (queue) ({series(BullMQMetric.OLDEST_WAITING, exp, queue, WORK)})",
                "{{queue}}",
            )
        ],
        line=Line(limits.queue_stalled_seconds),
        min_value=0,
    )
    board.timeseries(
        "Jobs per state per queue",
        "Every BullMQ state; completed and failed are what BullMQ retains, not totals.",
        "short",
        [
            Target(
                f"sum by (queue, state) ({series(BullMQMetric.JOBS, exp, queue)})",
                "{{queue}} {{state}}",
            )
        ],
        min_value=0,
    )
    active = series(BullMQMetric.JOBS, exp, queue, 'state="active"')
    board.timeseries(
        "Active jobs by queue",
        "Jobs a worker is processing now.",
        "short",
        [
            Target(
                f"sum by (queue) ({active})",
                "{{queue}}",
            )
        ],
        stacked=True,
    )

    _dead_letters(board, config, queue)

    board.row("Throughput")
    created = series(BusinessMetric.TASK_CREATED, exp, 'feature=~"$queue"')
    finished = [
        series(name, exp, 'feature=~"$queue"')
        for name in (BusinessMetric.TASK_SUCCEEDED, BusinessMetric.TASK_FAILED)
    ]
    board.timeseries(
        "Enqueued vs finished per second",
        "Tasks created (enqueued) and finished (succeeded + failed) per second; queues are "
        "named after features. Enqueued above finished means the backlog grows.",
        "ops",
        [
            Target(f"sum by (feature) (rate({created}[{RATE}]))", "{{feature}} enqueued"),
            Target(
                f"sum by (feature) (rate({finished[0]}[{RATE}]))"
                f" + sum by (feature) (rate({finished[1]}[{RATE}]))",
                "{{feature}} finished",
            ),
        ],
        min_value=0,
    )
    board.table(
        "Paused queues",
        "Queues paused globally (Queue.pause()); empty while every queue runs. The "
        f"{DEAD_LETTER_QUEUE} queue, always paused, is left out.",
        "none",
        [Target(f"max by (prefix, queue) ({series(BullMQMetric.PAUSED, exp, queue, WORK)}) == 1")],
        width=6,
        quiet=Fault.QUEUE_PAUSED,
    )
    board.stat(
        "Queues discovered",
        "BullMQ queues the exporter found in Redis.",
        "short",
        [Target(f"max ({series(BullMQMetric.QUEUES_DISCOVERED, exp)})", "queues")],
        width=6,
        height=8,
    )
    board.table(
        "Queue Redis eviction policy",
        "maxmemory-policy of the Redis holding each prefix's queues (INFO memory). BullMQ needs "
        "noeviction; any other policy deletes jobs once Redis is full (RedisEvictionPolicyUnsafe).",
        "none",
        [Target(f"max by (prefix, policy) ({series(BullMQMetric.REDIS_MAXMEMORY_POLICY, exp)})")],
        hide=("Time", "__name__", "job", "instance", "service", "Value"),
    )
    return board
