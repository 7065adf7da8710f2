"""``mailq failed list [--json] | show JOB_ID | requeue (JOB_ID... | --all) | delete JOB_ID...``."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .. import ops
from ..errors import UsageError
from ..text import literal, one_line
from .common import add_json, fit, open_db, out, print_json


def register(sub) -> None:
    p = sub.add_parser("failed", help="jobs that crashed (RQ's failed registries)")
    fsub = p.add_subparsers(dest="failed_command", metavar="ACTION")
    fsub.required = True
    ls = fsub.add_parser("list", help="failed jobs, newest first")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--search", help="only jobs whose id, function, error or mailbox contains this")
    add_json(ls)
    ls.set_defaults(handler=list_failed)
    show = fsub.add_parser("show", help="one failed job with its traceback")
    show.add_argument("job_id")
    add_json(show)
    show.set_defaults(handler=show_failed)
    rq_ = fsub.add_parser("requeue", help="run failed jobs again")
    rq_.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    rq_.add_argument("--all", action="store_true", help="every failed job")
    rq_.set_defaults(handler=requeue)
    rm = fsub.add_parser("delete", help="delete failed jobs for good")
    rm.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    rm.set_defaults(handler=delete)


def _as_dict(job, with_traceback: bool = False) -> dict:
    data = {
        "id": job.id,
        "queue": job.queue,
        "function": job.function,
        "mailbox_id": job.mailbox_id,
        "mailbox": job.mailbox_name,
        "error": job.error_line,
        "failed_at": job.failed_at.isoformat() + "Z" if job.failed_at else None,
    }
    if with_traceback:
        data["traceback"] = job.traceback
    return data


def list_failed(args) -> int:
    settings = open_db(args)
    jobs, total = ops.failed_jobs(settings, offset=args.offset, limit=args.limit, search=args.search)
    if args.json:
        print_json({"total": total, "jobs": [_as_dict(j) for j in jobs]})
        return 0
    if not jobs:
        out.print("no failed jobs" if not total else f"no failed jobs in this window (total {total})")
        return 0
    table = Table("job", "queue", "function", "mailbox", "failed at (UTC)", "error", box=None)
    for j in jobs:
        table.add_row(
            j.id,
            j.queue,
            j.function,
            Text(literal(j.mailbox_name or (str(j.mailbox_id or "") or "-"))),
            j.failed_at.strftime("%Y-%m-%d %H:%M:%S") if j.failed_at else "-",
            Text(one_line(j.error_line)[:120]),
        )
    out.print(fit(table, drop=("function", "queue")))
    shown = args.offset + len(jobs)
    if total > shown:
        out.print(f"{shown} of {total} shown (use --offset/--limit)")
    return 0


def show_failed(args) -> int:
    settings = open_db(args)
    job = ops.failed_job(settings, args.job_id)
    if args.json:
        print_json(_as_dict(job, with_traceback=True))
        return 0
    out.print(Text(f"{job.id} on {job.queue}: {job.function}"))
    out.print(Text(job.traceback or job.error_line or "(no traceback)"))
    return 0


def requeue(args) -> int:
    settings = open_db(args)
    if args.all and args.job_ids:
        raise UsageError("give job ids or --all, not both")
    if args.all:
        n = ops.requeue_all_failed(settings)
    elif args.job_ids:
        n = ops.requeue_failed(settings, args.job_ids)
    else:
        raise UsageError("name at least one job id, or --all")
    out.print(f"requeued {n} job(s)")
    return 0


def delete(args) -> int:
    settings = open_db(args)
    n = ops.delete_failed(settings, args.job_ids)
    out.print(f"deleted {n} job(s)")
    return 0
