"""A stack knows its own processes by when they started since boot, not by the wall clock."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psutil

from obsctl.stack.process import find_ours, spawn, start_ticks, stop


def test_a_stepped_clock_does_not_disown_a_running_server(tmp_path: Path) -> None:
    record, proc = spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                         tmp_path / "sleeper.log")  # fmt: skip
    try:
        assert record.start_ticks == start_ticks(proc.pid) and record.start_ticks is not None
        assert find_ours(record) is not None
        # btime moved a second (NTP): psutil's create_time of the same process shifts with it.
        shifted = replace(record, create_time=record.create_time - 1.0)
        assert find_ours(shifted) is not None, "the same process, started the same tick"
        # A pid the kernel gave to a later process: its start tick differs.
        reused = replace(record, start_ticks=record.start_ticks - 1)
        assert find_ours(reused) is None
        # Tables written before start ticks were recorded still work, by create_time.
        old = replace(record, start_ticks=None)
        assert find_ours(old) is not None and find_ours(replace(old, create_time=0.0)) is None
    finally:
        assert stop(record) in ("stopped", "killed")
        proc.wait(timeout=5)
    assert not psutil.pid_exists(proc.pid) or find_ours(record) is None


def test_the_start_tick_survives_a_command_name_with_parentheses(tmp_path: Path) -> None:
    # The kernel's command name is the executable's: a link to Python with ") (" in its name.
    odd = tmp_path / "a) b (c"
    odd.symlink_to(Path(sys.executable).resolve())
    proc = subprocess.Popen([str(odd), "-c", "import time; time.sleep(30)"])
    try:
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
        assert "(a) b (c)" in stat, stat[:80]
        ticks = start_ticks(proc.pid)
        assert ticks is not None and ticks == int(stat.split()[21 + 2])
    finally:
        proc.kill()
        proc.wait()
    assert start_ticks(2**22 + 12345) is None, "no such pid"
