"""A state directory owned by one process at a time (the relay's spool, the deadman's state)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_FILE = "owner.lock"


class StateDirError(RuntimeError):
    """The directory cannot be used: not creatable, or held by another live process."""


def claim(directory: Path, what: str) -> IO[str]:
    """Create and lock `directory` for this process; keep the returned file open to hold it.

    The lock is an flock, so it is released when the process dies however it dies; the file
    holds the owner's pid for the message another process gets.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = (directory / LOCK_FILE).open("a+", encoding="utf-8")
    except OSError as exc:
        raise StateDirError(f"cannot use {directory}: {exc.strerror}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise StateDirError(f"{directory} is in use by another {what} (pid {holder})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
