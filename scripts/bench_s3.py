"""First ingest into the S3 store beside the local store, same mailboxes, same run.

A private Dovecot (N mailboxes x M realistic messages), redis-server and S3 API
server (moto, standing in for AWS or MinIO on loopback), then for each store in
turn a fresh SQLite database and the benchmark's farm (W ``mailq worker`` and a
``mailq scheduler``, tests/testbed/bench_bed.py) with every mailbox made due at
once: wall time until every message is stored (bench_phases.first_ingest).
moto answers from memory on the same cores, so this measures mailq's S3 path
(signing, HTTP, concurrent puts, the wait before each commit), not a network's
latency. Run: python scripts/bench_s3.py [--mailboxes 20] [--messages 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the dev harness lives in tests/
from tests.testbed.bench_bed import Bed, populate, query, redis_client, start_farm, write_csv  # noqa: E402
from tests.testbed.bench_phases import first_ingest  # noqa: E402
from tests.testbed.s3d import S3Server  # noqa: E402


def store_ingest(bed: Bed, label: str, settings: dict, csv: Path, workers: int, total: int, size: int) -> dict:
    """One store in its own var dir (fresh database, flushed Redis): the harness's farm and first ingest."""
    redis_client(bed).flushdb()
    bed.env(label).update(settings)
    bed.mailq(label, "db", "upgrade")
    bed.mailq(label, "mailbox", "import", str(csv))
    farm = start_farm(bed, workers, var=label)
    try:
        result = first_ingest(farm, total, size)
    finally:
        farm.stop()
    return {"store": label, "rows": query(bed, label, "SELECT count(*) FROM message")[0][0], **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mailboxes", type=int, default=20)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    console = Console()
    root = Path(tempfile.mkdtemp(prefix="mailq-bench-s3-"))
    bed, s3 = Bed(root), S3Server(root / "s3")
    try:
        bed.redis.start()
        s3.start()
        size = populate(bed, args.mailboxes, args.mailboxes, args.messages)
        csv = write_csv(root / "boxes.csv", bed.dovecot.imap_port, 1, args.mailboxes, 3600)
        total = args.mailboxes * args.messages
        results = []
        for label, settings in (("local", {}), ("s3", {"MAILQ_STORAGE_URL": s3.url("bench"), **s3.env()})):
            results.append(store_ingest(bed, label, settings, csv, args.workers, total, size))
            console.log(f"{label}: {results[-1]['s']:.2f} s")
    finally:
        s3.stop()
        bed.close()
        shutil.rmtree(root, ignore_errors=True)
    table = Table(title=f"first ingest: {args.mailboxes} x {args.messages} messages ({size / 1e6:.1f} MB), {args.workers} workers")
    for col in ("store", "rows", "seconds", "msgs/s", "MB/s", "vs local"):
        table.add_column(col, justify="right")
    base = results[0]["s"]
    for r in results:
        table.add_row(
            r["store"], str(r["rows"]), f"{r['s']:.2f}", f"{r['rows'] / r['s']:.0f}", f"{size / r['s'] / 1e6:.1f}", f"{r['s'] / base:.2f}x"
        )
    console.print(table)


if __name__ == "__main__":
    main()
