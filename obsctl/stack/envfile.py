"""Read and write stack.env: KEY=value lines that both `source` and Python understand."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from obsctl.stack.secrets import write_private


def render(values: Mapping[str, str]) -> str:
    """KEY='value' lines, shell-quoted, in the given order."""
    lines = ["# written by `obsctl stack up`; load with: set -a; . ./stack.env; set +a"]
    lines += [f"{key}={shlex.quote(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def write(path: Path, values: Mapping[str, str]) -> None:
    """Write the env file with owner-only permissions (it holds credentials)."""
    write_private(path, render(values))


def read(path: Path) -> dict[str, str]:
    """Parse an env file written by write()."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, raw = stripped.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{path}:{number}: expected KEY=value, found {stripped[:40]!r}")
        parts = shlex.split(raw)
        values[key] = parts[0] if parts else ""
    return values
