"""Command line of the AI provider fake."""

import argparse
import os
import random
import re

from obsctl.stack.fakes.provider import API_KEY_ENV
from obsctl.stack.fakes.provider.app import build_app
from obsctl.stack.fakes.provider.control import Control, ControlError
from obsctl.stack.fakes.provider.tasks import TaskTable
from obsctl.stack.fakes.serve import serve, setup_logging


def _provider_name(value: str) -> str:
    # The name prefixes task ids, so keep it to characters that need no escaping in a URL.
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise argparse.ArgumentTypeError("use 1-64 letters, digits, '_', '.' or '-'")
    return value


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m obsctl.stack.fakes.provider",
        description="Fake AI image provider: async task API plus a /_control fault switch.",
    )
    parser.add_argument("--name", type=_provider_name, required=True, help="provider name")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--seed", type=int, help="seed task durations, failures and jitter")
    parser.add_argument(
        "--jitter-median-ms",
        type=int,
        default=0,
        help="median extra latency of every /v1 answer in ok mode (default 0: no jitter)",
    )
    parser.add_argument(
        "--jitter-sigma", type=float, default=0.5, help="lognormal spread of that jitter"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV),
        help=f"the key every /v1 call must carry (default: ${API_KEY_ENV}; the environment "
        "keeps it out of the process list)",
    )
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(f"an API key is required: set {API_KEY_ENV} or pass --api-key")
    setup_logging()
    tasks = TaskTable(args.name, random.Random(args.seed))
    control = Control(provider=args.name)
    try:
        control.apply(
            {"jitter_median_ms": args.jitter_median_ms, "jitter_sigma": args.jitter_sigma}
        )
    except ControlError as exc:
        parser.error(str(exc))
    jitter_rng = random.Random(None if args.seed is None else args.seed + 1)
    app = build_app(control, tasks, args.api_key, jitter_rng)
    serve(app, args.host, args.port, "provider")


if __name__ == "__main__":
    main()
