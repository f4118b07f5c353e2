"""One drill at a time on a system: a lock beside the drill's state file, held while it runs.

The lock is an flock, so it dies with its holder however the holder dies: a state file whose
lock is free is a crashed drill's (the next drill undoes it, as before), and a state file
whose lock is held is a drill still running, which nobody else may touch.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class DrillRunning(Exception):
    """Another drill holds the system's lock."""


def lock_path(state_file: Path) -> Path:
    """Where the lock of the system whose drill state is `state_file` lives."""
    return state_file.with_name(state_file.name + ".lock")


@contextmanager
def drill_lock(state_file: Path, scenario: str, drill_id: str) -> Iterator[None]:
    """Hold the system's drill lock for the block; DrillRunning (touching nothing) if taken."""
    path = lock_path(state_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            raise DrillRunning(_holder(handle.read())) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "scenario": scenario,
                                 "drill_id": drill_id, "since": time.time()}))  # fmt: skip
        handle.flush()
        yield
    finally:
        handle.close()  # releases the flock


def _holder(text: str) -> str:
    try:
        held = json.loads(text)
        since = time.strftime("%H:%M:%S", time.localtime(float(held["since"])))
        who = f"{held['scenario']} ({held['drill_id']}, pid {held['pid']}, since {since})"
    except (ValueError, KeyError, TypeError):
        who = "a drill"
    return (
        f"another drill is running on this system: {who}; wait for it to finish (its restore "
        "always runs) or stop it with Ctrl-C, then try again"
    )
