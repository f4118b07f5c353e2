"""`obsctl check app URL`: does the API's /metrics hold to obsctl's metric contract?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from obsctl.cli.options import load_config, project_file, project_file_options


def _headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            # The value is not echoed: it is likely a credential.
            raise click.BadParameter("expected 'NAME: VALUE'", param_hint="--header")
        headers[name.strip()] = content.strip()
    return headers


@click.command(short_help="Hold the API's /metrics to the metric contract.")
@click.argument("url")
@project_file_options("obsctl.yaml")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds to wait for each scrape.")  # fmt: skip
@click.option("--header", "header_values", multiple=True, metavar="'NAME: VALUE'",
              help="HTTP header for every scrape (repeatable), e.g. an Authorization.")  # fmt: skip
@click.option("--scrapes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Scrapes to take; from 2 on, one registry must answer them all.")  # fmt: skip
@click.option("--interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between scrapes.")  # fmt: skip
@click.option("--max-label-values", type=click.IntRange(min=1), default=100, show_default=True,
              help="Distinct values one label may have.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def app(
    url: str,
    config_path: Path | None,
    project_dir: Path | None,
    timeout: float,
    header_values: tuple[str, ...],
    scrapes: int,
    interval: float,
    max_label_values: int,
    as_json: bool,
) -> None:
    """Check the API's /metrics at URL against the metric contract (obsctl/mixin/contract.py).

    Each contract metric with its type, labels and a bucket at every latency threshold of the
    project's obsctl.yaml (or --config); counters named *_total; no raw URLs or unbounded
    label values; and, over several scrapes, one registry answering (not PM2 workers in
    turn). Exit code 0 when the contract holds, 1 on violations, 2 when URL cannot be
    scraped or the config is bad.
    """
    from obsctl.checks import app as checks
    from obsctl.checks.exposition import ScrapeError
    from obsctl.mixin.config import load

    headers = _headers(header_values)
    config_file = project_file(config_path, project_dir, "config_file")
    config = load_config(load, config_file)
    try:
        report = checks.run(
            url,
            config,
            checks.source_name(config_file),
            headers=headers,
            timeout=timeout,
            scrapes=scrapes,
            interval=interval,
            max_label_values=max_label_values,
        )
    except ScrapeError as exc:
        click.echo(f"obsctl check app: cannot scrape {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo("\n".join(report.lines()))
    sys.exit(0 if report.ok else 1)
