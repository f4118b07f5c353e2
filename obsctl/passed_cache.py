"""Remembered passes of slow tool runs (promtool's rule tests), keyed by every input.

`promtool test rules` takes most of `obsctl validate`'s time and gives the same answer for the
same files and the same promtool. A pass is remembered under a hash of the promtool binary
(path, size, mtime), the command line and the contents of every file it reads; any change to
one of them is a miss and the tool runs again. Failures are never remembered, and a cache that
cannot be read or written only costs the run it would have saved.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

CACHE_ENV = "OBSCTL_CACHE_DIR"


def cache_dir() -> Path:
    """Where passes are kept: $OBSCTL_CACHE_DIR, else the user's XDG cache directory."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "obsctl" / "passed"


def run_key(program: str, command: list[str], inputs: Iterable[Path], base: Path) -> str | None:
    """The hash of one run's inputs (named relative to `base`), or None if one is unreadable.

    Relative names let two copies of a project share their passes.
    """
    digest = hashlib.sha256()
    try:
        binary = Path(program).resolve()
        stat = binary.stat()
        digest.update(f"{binary}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        digest.update("\0".join(command).encode() + b"\0\0")
        for path in sorted({p.resolve() for p in inputs}):
            name = os.path.relpath(path, base.resolve())
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def passed_before(key: str | None) -> bool:
    """Whether a run with exactly these inputs passed before."""
    return key is not None and (cache_dir() / key).is_file()


def remember_pass(key: str | None) -> None:
    """Record that a run with these inputs passed (best effort)."""
    if key is None:
        return
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        (cache_dir() / key).touch()
    except OSError:
        pass
