"""Peak worker memory of one poll: a 40 MB message, and a batch of many 1 MB messages.

Starts a private Dovecot under a temporary directory, delivers the messages,
then runs each poll in a fresh Python process (SQLite + blob directory of its
own) and reports that process's idle RSS (after imports and setup) and its
peak RSS (VmHWM) during ``poll_mailbox``. With ``--baseline DIR`` the same polls
also run with the mailq package found in DIR (e.g. a checkout of an older
commit), so both figures come from one run on one machine.
Run: python scripts/bench_memory.py [--big-mb 40] [--many 60] [--baseline /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the dev harness lives in tests/
from tests.testbed.dovecot import Dovecot  # noqa: E402

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from cryptography.fernet import Fernet
from mailq import config, db, mailboxes, migrations
from mailq.poll import poll_mailbox

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
var = sys.argv[2]
settings = config.load({"MAILQ_VAR_DIR": var, "MAILQ_SECRET_KEY": Fernet.generate_key().decode(),
                        "MAILQ_READ_TIMEOUT": "60", "MAILQ_POLL_BUDGET_SECONDS": "300"}, env_file=None)
db.bind(settings.database_url)
migrations.upgrade()
spec = mailboxes.validate(name="m", host="127.0.0.1", port=int(sys.argv[3]), security="plain",
                          username=sys.argv[4], password=sys.argv[5])
box = mailboxes.save(settings, spec)[0]
import gc; gc.collect()
idle = status("VmRSS")
started = time.monotonic()
result = poll_mailbox(settings, box.id)
print(json.dumps({"idle": idle, "peak": status("VmHWM"), "new": result.new, "outcome": result.outcome,
                  "seconds": round(time.monotonic() - started, 2)}))
"""


def message(size: int, seed: int) -> bytes:
    """A message of about ``size`` bytes: a short text part and a base64 attachment (what large mail is)."""
    payload = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        b"From: big@example.com\r\nTo: you@example.com\r\nSubject: big %d\r\nMessage-ID: <big%d@example.com>\r\n"
        b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n'
        b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="blob.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" % (seed, seed) + payload + b"--b--\r\n"
    )


def run(tree: Path, work: Path, port: int, user: str, password: str) -> dict:
    var = tempfile.mkdtemp(dir=work)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), var, str(port), user, password], capture_output=True, text=True, timeout=900
    )
    if out.returncode != 0:
        raise SystemExit(f"poll in {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mb", type=int, default=40)
    ap.add_argument("--many", type=int, default=60, help="number of 1 MB messages in the batch case")
    ap.add_argument("--baseline", type=Path, help="a checkout whose mailq package is measured the same way")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailq-mem-"))
    os.chmod(work, 0o755)
    dovecot = Dovecot(work / "dovecot")
    dovecot.add_users({"big": "pw-big", "many": "pw-many"})
    dovecot.start()
    try:
        big = message(args.big_mb * 1024 * 1024, 1)
        dovecot.deliver("big", big)
        dovecot.deliver_many(("many", message(1024 * 1024, i)) for i in range(args.many))
        batch = 16 * 1024 * 1024  # MAILQ_FETCH_BATCH_BYTES' default
        cases = [
            ("big", f"one {len(big) / 1e6:.1f} MB message", len(big), "S"),
            ("many", f"{args.many} x 1 MB messages", batch, "FETCH_BATCH_BYTES"),
        ]
        trees = [("this tree", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
        for user, label, size, unit in cases:
            for name, tree in trees:
                r = run(tree, work, dovecot.imap_port, user, f"pw-{user}")
                grew = r["peak"] - r["idle"]
                print(
                    f"{label:24} {name:10} idle {r['idle'] / 2**20:6.0f} MiB  peak {r['peak'] / 2**20:6.0f} MiB  "
                    f"peak-idle {grew / 2**20:6.0f} MiB = {grew / size:4.1f} x {unit}  ({r['outcome']}, {r['new']} new, {r['seconds']} s)"
                )
    finally:
        dovecot.stop()


if __name__ == "__main__":
    main()
