"""Start servers detached, remember exactly which process is which, and stop only those."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

# psutil reports create_time with 10 ms resolution on Linux; allow for rounding.
_CREATE_TIME_TOLERANCE = 0.05


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (Linux's /proc/<pid>/stat), else None.

    Unlike psutil's create_time, which adds the boot time of /proc/stat, this does not move
    when the wall clock is stepped or slewed: btime is wall time minus uptime, rounded down to
    a second, so NTP nudging it across a second shifts every create_time by a whole second.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessRecord:
    """Identity of a process the stack started: a pid alone can be reused by the kernel."""

    name: str
    pid: int
    create_time: float
    argv: list[str]
    log: str
    start_ticks: int | None = None  # None in tables written before it was recorded

    def is_alive_as(self, create_time: float) -> bool:
        """Whether the process now at this pid (created at `create_time`) is this very one."""
        if self.start_ticks is not None:
            ticks = start_ticks(self.pid)
            if ticks is not None:
                return ticks == self.start_ticks
        return abs(create_time - self.create_time) <= _CREATE_TIME_TOLERANCE

    def older(self, pid: int, create_time: float) -> bool:
        """Whether process `pid` started before this one (so it cannot be one of its own)."""
        if self.start_ticks is not None:
            ticks = start_ticks(pid)
            if ticks is not None:
                return ticks < self.start_ticks
        return create_time + _CREATE_TIME_TOLERANCE < self.create_time


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[ProcessRecord, subprocess.Popen[bytes]]:
    """Start argv in its own session with output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    record = ProcessRecord(
        name=name,
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        argv=list(argv),
        log=str(log_path),
        start_ticks=start_ticks(proc.pid),
    )
    return record, proc


def find_ours(record: ProcessRecord) -> psutil.Process | None:
    """The live process behind record, or None if it is gone or the pid now belongs to another."""
    try:
        proc = psutil.Process(record.pid)
        if not record.is_alive_as(proc.create_time()):
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_running(record: ProcessRecord) -> bool:
    """True while the recorded process itself is alive."""
    return find_ours(record) is not None


def stop(record: ProcessRecord, timeout: float = 10.0) -> str:
    """Stop the recorded process and its children; return what happened in a word."""
    proc = find_ours(record)
    if proc is None:
        return "not running"
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return "not running"
    _signal_all(family, signal.SIGTERM)
    alive = _wait_all_gone(family, timeout)
    if not alive:
        return "stopped"
    _signal_all(alive, signal.SIGKILL)
    _wait_all_gone(alive, 5.0)
    return "killed"


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_all_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Poll briefly until every process has exited; return those still alive at the deadline.

    psutil.wait_procs polls non-children with a slowly growing interval, which made a stack
    of ten servers take 20 s to stop; they exit in milliseconds.
    """
    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        reap_children()
        alive = [p for p in alive if not _gone(p)]
        if alive:
            time.sleep(0.02)
    return alive


def _signal_all(procs: Sequence[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)


def reap_children() -> None:
    """Collect exited children of this process so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class ProcessTable:
    """The JSON file listing every process a stack started, rewritten atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, ProcessRecord]:
        """All records, keyed by server name."""
        if not self.path.exists():
            return {}
        raw = json.loads(self.path.read_text())
        return {item["name"]: ProcessRecord(**item) for item in raw}

    def save(self, records: Mapping[str, ProcessRecord]) -> None:
        """Replace the file with records."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(r) for r in records.values()], indent=2))
        os.replace(tmp, self.path)

    def add(self, record: ProcessRecord) -> None:
        """Record one more process (before waiting for it, so a crash cannot orphan it)."""
        records = self.load()
        records[record.name] = record
        self.save(records)

    def remove(self, name: str) -> None:
        """Forget one process."""
        records = self.load()
        records.pop(name, None)
        self.save(records)
