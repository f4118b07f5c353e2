"""The knex migration that adds what `obsctl check db` found missing, written into the project.

It holds exactly the DDL the check printed (through `knex.raw`, so the file and the report can
never disagree), columns before the indexes that may use them, and the reverse in `down`.
A file is never overwritten, and the same changes are not written twice while an earlier file
holding them is still waiting to be applied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from obsctl.exporter.probes.business_report import Finding, Kind

SUFFIX = "_obsctl_business_reader.js"
_ORDER = {Kind.TABLE: 0, Kind.COLUMN: 1, Kind.INDEX: 2, Kind.PLAN: 3}


@dataclass(frozen=True)
class Migration:
    """Where the migration is, and whether this run wrote it (False: an earlier run did)."""

    path: Path
    written: bool


def render(findings: Sequence[Finding]) -> str | None:
    """The migration's JavaScript, or None when no finding has DDL to apply."""
    changes = sorted((f for f in findings if f.ddl), key=lambda f: _ORDER[f.kind])
    if not changes:
        return None
    up = "".join(f"  await knex.raw({json.dumps(f.ddl)});\n" for f in changes)
    down = "".join(
        f"  await knex.raw({json.dumps(f.undo)});\n" for f in reversed(changes) if f.undo
    )
    return (
        "'use strict';\n\n"
        "// Written by `obsctl check db`: what the obsctl business reader needs and this schema\n"
        "// lacks. Review it, apply it with the platform's migrations (npx knex migrate:latest),\n"
        "// then run `obsctl check db` again.\n\n"
        f"exports.up = async (knex) => {{\n{up}}};\n\n"
        f"exports.down = async (knex) => {{\n{down}}};\n"
    )


def write(
    directory: Path, findings: Sequence[Finding], now: datetime | None = None
) -> Migration | None:
    """Write the migration into directory (created if need be); None when nothing is missing."""
    text = render(findings)
    if text is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    for earlier in sorted(directory.glob(f"*{SUFFIX}")):
        if earlier.read_text(encoding="utf-8") == text:
            return Migration(earlier, written=False)
    # knex names its own migrations by local time; the next free second keeps them ordered.
    stamp = now or datetime.now()
    while True:
        path = directory / f"{stamp:%Y%m%d%H%M%S}{SUFFIX}"
        try:
            with path.open("x", encoding="utf-8") as out:
                out.write(text)
        except FileExistsError:
            stamp += timedelta(seconds=1)
            continue
        return Migration(path, written=True)
