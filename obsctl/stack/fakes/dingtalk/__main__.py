"""Command line of the DingTalk robot fake."""

import argparse
import logging
import sys
from pathlib import Path

from obsctl.stack.fakes.dingtalk.app import RobotService, build_app
from obsctl.stack.fakes.dingtalk.robots import RobotsFileError, load_robots
from obsctl.stack.fakes.dingtalk.store import MessageStore
from obsctl.stack.fakes.serve import serve, setup_logging


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, load the robots and serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m obsctl.stack.fakes.dingtalk",
        description="Fake DingTalk custom group robot webhook with a recorded message store.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--robots", type=Path, required=True, help="JSON file of robots by token")
    parser.add_argument("--store", type=Path, required=True, help="JSONL file of received requests")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        robots = load_robots(args.robots)
    except RobotsFileError as exc:
        logging.getLogger("dingtalk").error("%s", exc)
        sys.exit(2)
    args.store.parent.mkdir(parents=True, exist_ok=True)
    service = RobotService(robots=robots, store=MessageStore(args.store))
    signed = sum(robot.secret is not None for robot in robots.values())
    logging.getLogger("dingtalk").info("%d robots (%d signed)", len(robots), signed)
    serve(build_app(service), args.host, args.port, "dingtalk")


if __name__ == "__main__":
    main()
