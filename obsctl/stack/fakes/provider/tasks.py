"""The provider fake's in-memory task table: sampled durations and outcomes."""

import math
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

MAX_TASKS = 10_000
MIN_DURATION_MS = 50.0
# Lognormal spread: about two thirds of the tasks finish within 0.7x..1.4x of the median.
DURATION_SIGMA = 0.35
FAILURE_REASONS = ("model_error", "content_rejected", "input_unreadable")
# The one a retry may cure (the others are about the input): what task_failure mode fails with.
TRANSIENT_FAILURE = "model_error"

Status = Literal["processing", "succeeded", "failed"]


@dataclass(frozen=True)
class Task:
    """One submitted task; its outcome is drawn when it is created."""

    task_id: str
    feature: str
    input_url: str
    client_task_id: str
    finishes_at: float
    error: str | None

    def status(self, now: float) -> Status:
        """Return the status the task has at monotonic time `now`."""
        if now < self.finishes_at:
            return "processing"
        return "failed" if self.error else "succeeded"


class TaskTable:
    """Tasks by id, bounded: the oldest finished task is dropped first."""

    def __init__(
        self,
        provider: str,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = MAX_TASKS,
    ) -> None:
        self._provider = provider
        self._rng = rng
        self._clock = clock
        self._capacity = capacity
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tasks)

    def now(self) -> float:
        """Return the table's clock reading."""
        return self._clock()

    def create(
        self,
        feature: str,
        input_url: str,
        client_task_id: str,
        *,
        median_ms: int,
        failure_rate: float,
        error: str | None = None,
    ) -> Task:
        """Register a task whose duration and success are sampled now; `error` fails it so."""
        sampled_ms = self._rng.lognormvariate(math.log(median_ms), DURATION_SIGMA)
        duration_ms = max(MIN_DURATION_MS, sampled_ms)
        fails = self._rng.random() < failure_rate
        task = Task(
            task_id=f"{self._provider}-{uuid.uuid4().hex}",
            feature=feature,
            input_url=input_url,
            client_task_id=client_task_id,
            finishes_at=self._clock() + duration_ms / 1000,
            error=error or (self._rng.choice(FAILURE_REASONS) if fails else None),
        )
        self._tasks[task.task_id] = task
        self._evict()
        return task

    def get(self, task_id: str) -> Task | None:
        """Return the task, or None when it is unknown or was dropped."""
        return self._tasks.get(task_id)

    def _evict(self) -> None:
        now = self._clock()
        while len(self._tasks) > self._capacity:
            victim = next(
                (tid for tid, task in self._tasks.items() if task.status(now) != "processing"),
                next(iter(self._tasks)),
            )
            del self._tasks[victim]
