"""Command line of the Tencent Cloud SMS fake."""

import argparse
import logging
import sys
from pathlib import Path

from obsctl.stack.fakes.dingtalk.store import MessageStore
from obsctl.stack.fakes.serve import serve, setup_logging
from obsctl.stack.fakes.tencent_sms.accounts import AccountsFileError, load_accounts
from obsctl.stack.fakes.tencent_sms.app import SmsService, build_app


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, load the accounts and serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m obsctl.stack.fakes.tencent_sms",
        description="Fake Tencent Cloud SMS SendSms endpoint with a recorded message store.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--accounts", type=Path, required=True,
                        help="JSON file of accounts by SecretId")  # fmt: skip
    parser.add_argument("--store", type=Path, required=True, help="JSONL file of received requests")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        accounts = load_accounts(args.accounts)
    except AccountsFileError as exc:
        logging.getLogger("tencent-sms").error("%s", exc)
        sys.exit(2)
    args.store.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("tencent-sms").info("%d accounts", len(accounts))
    serve(build_app(SmsService(accounts, MessageStore(args.store))), args.host, args.port,
          "tencent-sms")  # fmt: skip


if __name__ == "__main__":
    main()
