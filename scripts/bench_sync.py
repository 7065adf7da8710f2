"""First-sync rate of ``poll_mailbox`` next to a bare imapclient fetch loop, same messages, same run.

Starts a private Dovecot and a throw-away SQLite database and blob directory
under a temporary directory (or --dir), delivers N realistic messages (mailgen),
then measures: the bare loop (UID SEARCH + batched BODY.PEEK[] fetches, nothing
stored), and mailq's first poll of the same mailbox (fetch, parse, blobs, rows).
Run: python scripts/bench_sync.py [-n 5000] [--profile]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet
from imapclient import IMAPClient
from rich.console import Console
from rich.table import Table

from mailq import config, db, mailboxes, migrations
from mailq.models import Message
from mailq.poll import poll_mailbox

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the dev harness lives in tests/
from tests.testbed.dovecot import Dovecot
from tests.testbed.mailgen import make_messages

USER, PASSWORD = "bench", "bench-pw"


def bare_loop(port: int, batch: int) -> tuple[int, int, float, float]:
    """(messages, bytes, seconds, CPU seconds of this process) of fetching every message of INBOX, storing nothing."""
    started, cpu = time.perf_counter(), time.process_time()
    with IMAPClient("127.0.0.1", port, ssl=False, timeout=60) as client:
        client.login(USER, PASSWORD)
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["UID", "1:*"]))
        count = total = 0
        for i in range(0, len(uids), batch):
            for data in client.fetch(uids[i : i + batch], ["BODY.PEEK[]"]).values():
                count += 1
                total += len(data[b"BODY[]"])
    return count, total, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5000, help="messages in the mailbox")
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--profile", action="store_true", help="profile mailq's poll with pyinstrument")
    args = ap.parse_args()
    console = Console()
    root = Path(args.dir or tempfile.mkdtemp(prefix="mailq-bench-"))
    dovecot = Dovecot(root / "dovecot")
    try:
        dovecot.start()
        dovecot.add_user(USER, PASSWORD)
        messages = make_messages(args.n, seed=42)
        dovecot.deliver_many((USER, raw) for raw in messages)
        dovecot.index()
        size = sum(map(len, messages))
        console.print(f"{args.n} messages, {size / 1e6:.1f} MB (avg {size / args.n / 1e3:.1f} KB) on {dovecot}")

        settings = config.load(
            {
                "MAILQ_VAR_DIR": str(root / "var"),
                "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
                "MAILQ_POLL_BUDGET_MESSAGES": str(args.n * 2),
                "MAILQ_POLL_BUDGET_SECONDS": "3600",
            },
            env_file=None,
        )
        config.use(settings)
        db.bind(settings.database_url)
        migrations.upgrade()
        spec = mailboxes.validate(
            name="bench", host="127.0.0.1", port=dovecot.imap_port, security="plain", username=USER, password=PASSWORD
        )
        mailbox, _ = mailboxes.save(settings, spec)

        bare_loop(dovecot.imap_port, settings.fetch_batch)  # warm Dovecot's caches for both contenders
        n_bare, bytes_bare, t_bare, cpu_bare = bare_loop(dovecot.imap_port, settings.fetch_batch)

        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler()
            profiler.start()
        started, cpu = time.perf_counter(), time.process_time()
        result = poll_mailbox(settings, mailbox.id)
        t_mailq, cpu_mailq = time.perf_counter() - started, time.process_time() - cpu
        if profiler:
            profiler.stop()
        stored = Message.select().where(Message.mailbox == mailbox.id).count()
        assert result.outcome == "ok" and stored == args.n, (result, stored)

        table = Table(title=f"first sync of {args.n} messages (SQLite, local blobs, fetch batch {settings.fetch_batch})")
        for col in ("", "messages", "seconds", "messages/s", "MB/s", "CPU s (this process)"):
            table.add_column(col, justify="right")
        table.add_row(
            "bare imapclient loop",
            str(n_bare),
            f"{t_bare:.2f}",
            f"{n_bare / t_bare:,.0f}",
            f"{bytes_bare / t_bare / 1e6:.0f}",
            f"{cpu_bare:.2f}",
        )
        table.add_row(
            "mailq poll_mailbox",
            str(stored),
            f"{t_mailq:.2f}",
            f"{stored / t_mailq:,.0f}",
            f"{size / t_mailq / 1e6:.0f}",
            f"{cpu_mailq:.2f}",
        )
        console.print(table)
        console.print(
            f"mailq / bare = {(stored / t_mailq) / (n_bare / t_bare):.2f}x "
            f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other work skews both)"
        )
        if profiler:
            console.print(profiler.output_text(unicode=True, color=True))
    finally:
        dovecot.stop()
        db.close()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
