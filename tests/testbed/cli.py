"""`scripts/testbed start|stop|status`: a private, populated Dovecot for the demo and benchmarks.

State (ports, counts) lives in DIR/testbed.json so stop and status find the
instance; DIR/mailboxes.csv lists the accounts in mailq's import format.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tests.testbed.accounts import deliver_tagged, password_for, user_name, write_mailbox_csv
from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.mailgen import DEFAULT_MAX_BYTES, make_messages

console = Console()


def _state_path(root: Path) -> Path:
    return root / "testbed.json"


def load_state(root: Path) -> dict:
    try:
        return json.loads(_state_path(root).read_text())
    except (OSError, ValueError):
        return {}


def _save_state(root: Path, state: dict) -> None:
    _state_path(root).write_text(json.dumps(state, indent=2) + "\n")


def _dovecot(root: Path, state: dict, port: int | None = None) -> Dovecot:
    imap = port or state.get("imap_port")
    return Dovecot(root, imap_port=imap, imaps_port=state.get("imaps_port") if imap else None)


def _maildir_count(dovecot: Dovecot, name: str) -> int:
    """Messages on disk in the user's INBOX (new/ + cur/), without asking Dovecot."""
    home = dovecot.mail_dir / name
    return sum(1 for sub in ("new", "cur") if (home / sub).is_dir() for _ in (home / sub).iterdir())


def _inject(dovecot: Dovecot, names: list[str], messages: int, seed: int, max_bytes: int) -> int:
    """Deliver `messages` generated messages to each empty mailbox, with a progress bar."""
    todo = [n for n in names if _maildir_count(dovecot, n) == 0]
    if not todo or messages <= 0:
        return 0
    pool = make_messages(messages, seed=seed, max_bytes=max_bytes)
    columns = [TextColumn("injecting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    total = 0
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("inject", total=len(todo))
        for name in todo:
            total += deliver_tagged(dovecot, name, pool)
            progress.advance(task)
    with console.status("indexing"):
        dovecot.index()
    return total


def write_csv(path: Path, dovecot: Dovecot, names: list[str]) -> None:
    write_mailbox_csv(path, dovecot.imap_port, {name: password_for(name) for name in names})


def cmd_start(args: argparse.Namespace) -> int:
    root = Path(args.root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    state = load_state(root)
    dovecot = _dovecot(root, state, args.port)
    names = [user_name(i) for i in range(1, args.mailboxes + 1)]
    existing = dovecot.users()
    new = {n: password_for(n) for n in names if existing.get(n) != password_for(n)}
    was_running = dovecot.running()
    if new:
        dovecot.add_users(new)  # before start() when possible: no wait for the auth reload
    dovecot.start()
    injected = _inject(dovecot, names, args.messages, args.seed, args.max_bytes)
    write_csv(root / "mailboxes.csv", dovecot, names)
    state.update(
        imap_port=dovecot.imap_port, imaps_port=dovecot.imaps_port, mailboxes=len(dovecot.users()), messages=args.messages, seed=args.seed
    )
    _save_state(root, state)
    verb = "already running" if was_running else "started"
    console.print(f"[green]dovecot {verb}[/] on 127.0.0.1 imap={dovecot.imap_port} imaps={dovecot.imaps_port}")
    console.print(
        f"users: {len(new)} added, {len(names) - len(new)} already there; "
        f"messages injected: {injected}" + ("" if injected or not args.messages else " (already populated)")
    )
    console.print(f"accounts: {root / 'mailboxes.csv'}  CA cert: {dovecot.cert_path}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    root = Path(args.root).absolute()
    state = load_state(root)
    if not state:
        console.print(f"nothing to stop: no test bed was started in {root}")
        return 0
    dovecot = _dovecot(root, state)
    if not dovecot.running():
        console.print("dovecot is not running")
        return 0
    dovecot.stop()
    console.print("[green]dovecot stopped[/]")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    root = Path(args.root).absolute()
    state = load_state(root)
    if not state:
        console.print(f"no testbed in {root}")
        return 1
    dovecot = _dovecot(root, state)
    running = dovecot.running()
    users = list(dovecot.users())
    counts = [_maildir_count(dovecot, n) for n in users]
    table = Table(show_header=False, box=None)
    table.add_row("root", str(root))
    table.add_row("state", "[green]running[/]" if running else "[red]stopped[/]")
    table.add_row("imap port", str(dovecot.imap_port))
    table.add_row("imaps port", str(dovecot.imaps_port))
    table.add_row("users", str(len(users)))
    table.add_row("messages", f"{sum(counts)} in all" + (f", {min(counts)}-{max(counts)} per INBOX" if counts else ""))
    console.print(table)
    return 0 if running else 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="testbed", description="Private Dovecot for mailq's demo, tests and benchmarks.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start (and populate) the private Dovecot")
    start.add_argument("--mailboxes", type=int, default=100, help="users user0001..userNNNN (default 100)")
    start.add_argument("--messages", type=int, default=0, help="generated messages per empty INBOX (default 0)")
    start.add_argument("--port", type=int, default=None, help="IMAP port (default: a free one, kept in testbed.json)")
    start.add_argument("--seed", type=int, default=0, help="mail generator seed")
    start.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest generated message")
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop it").set_defaults(func=cmd_stop)
    sub.add_parser("status", help="show ports, users and message counts").set_defaults(func=cmd_status)
    for p in sub.choices.values():
        p.add_argument("--root", default="var/testbed", help="state directory (default ./var/testbed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DovecotError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
