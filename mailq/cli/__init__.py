"""The ``mailq`` command: argparse subcommands, one module per command group.

Errors print ``error: <message>`` on stderr with no traceback and exit 1; bad
usage exits 2. ``--json`` output is stable and goes to stdout alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ..errors import MailqError, UsageError
from . import process_cmd

# Each module has register(subparsers); its handlers take (args) and return an exit code.
COMMAND_MODULES = [process_cmd]


def _optional_modules() -> list:
    """Command groups added by later parts of the system (imported lazily to keep startup fast)."""
    found = []
    for name in (
        "db_cmd",
        "mailbox_cmd",
        "poll_cmd",
        "messages_cmd",
        "farm_cmd",
        "failed_cmd",
        "status_cmd",
        "console_cmd",
        "oauth_cmd",
    ):
        try:
            found.append(importlib.import_module(f"{__name__}.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    return found


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # bad usage: exit 2 with one line, like argparse but without the wall of usage
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def _command(argv: Sequence[str]) -> str | None:
    """The command word of ``argv`` (past ``--env-file FILE``), without parsing anything else."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--env-file":
            next(tokens, None)
        elif not token.startswith("-"):
            return token
    return None


def build_parser(only_processes: bool = False) -> argparse.ArgumentParser:
    """Every command's parser; with ``only_processes`` just the farm processes' (they start without the rest)."""
    parser = _Parser(prog="mailq", description="mailq: a mailbox-polling worker farm on RQ and Redis.")
    parser.add_argument("--env-file", default=".env", help="read settings from this file too (default .env)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMAND_MODULES + ([] if only_processes else _optional_modules()):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only_processes=_command(argv) in process_cmd.COMMANDS)
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MailqError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the operator, the traceback only on request
        if os.environ.get("MAILQ_DEBUG"):
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (set MAILQ_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr
        )
        return 1
    return code or 0


def run() -> None:
    sys.exit(main())
