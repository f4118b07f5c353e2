"""`obsctl probe`: run the exporter's probes once, by hand, and print what they found."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from obsctl.cli.options import load_config, project_file, project_file_options

if TYPE_CHECKING:
    from obsctl.exporter.probes.base import Probe, ProbeOutcome


@click.command()
@click.argument("targets", nargs=-1)
@project_file_options("exporter")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def probe(
    targets: tuple[str, ...], config_path: Path | None, project_dir: Path | None, as_json: bool
) -> None:
    """Probe each dependency once (or only TARGETS: mysql, redis, cos, provider:alpha, …).

    Exit code 0 when every probed dependency answered, 1 when any is down, 2 on a bad config.
    """
    from obsctl.exporter.config import load
    from obsctl.exporter.probes.base import Status
    from obsctl.exporter.wiring import build_probes

    config = load_config(load, project_file(config_path, project_dir, "exporter_config"))
    probes = build_probes(config)
    names = {f"{p.kind}:{p.target}": p for p in probes}
    wanted = [p for p in probes if _selected(p.kind, p.target, targets)]
    if not wanted:
        known = ", ".join(sorted(names))
        click.echo(f"no probe matches {' '.join(targets)}; configured: {known}", err=True)
        sys.exit(2)
    outcomes = asyncio.run(_run_all(wanted))
    rows: list[dict[str, Any]] = [
        {
            "probe": o.probe,
            "target": o.target,
            "status": o.status.value,
            "latency_ms": round(o.duration_seconds * 1000, 1),
            "reason": o.reason.value if o.reason else None,
            "detail": o.detail,
        }
        for o in outcomes
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(f"{'PROBE':<10} {'TARGET':<14} {'STATUS':<9} {'LATENCY':>10}  REASON")
        for row in rows:
            reason = row["reason"] or ""
            if row["detail"] and row["status"] != "ok":
                reason += f" ({row['detail']})"
            click.echo(
                f"{row['probe']:<10} {row['target']:<14} {row['status']:<9} "
                f"{row['latency_ms']:>8.1f}ms  {reason}"
            )
    sys.exit(1 if any(o.status is Status.DOWN for o in outcomes) else 0)


def _selected(kind: str, target: str, targets: tuple[str, ...]) -> bool:
    if not targets:
        return True
    aliases = {"db": "mysql"}
    for wanted in targets:
        name, _, which = wanted.partition(":")
        if aliases.get(name, name) == kind and (not which or which == target):
            return True
    return False


async def _run_all(probes: list[Probe]) -> list[ProbeOutcome]:
    from obsctl.exporter.probes.base import run_bounded

    try:
        return list(await asyncio.gather(*(run_bounded(p) for p in probes)))
    finally:
        for p in probes:
            await p.close()
