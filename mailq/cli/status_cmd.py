"""``mailq status [--json]``: mailboxes by health, queues, workers, failed jobs, scheduler."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .. import ops
from ..ops import privacy
from ..states import DISPLAY_STATES, PAUSED, State
from ..text import literal, span
from .common import add_json, err, fit, open_db, out, print_json

_STATE_STYLE = {State.OK: "green", State.FAILING: "yellow", State.AUTH_ERROR: "red", PAUSED: "dim"}


def register(sub) -> None:
    p = sub.add_parser("status", help="mailboxes by health, queues, workers and failed jobs")
    add_json(p)
    p.set_defaults(handler=status)


def _age(seconds: int) -> str:
    if not seconds:
        return "forever"
    return f"{seconds / 86400:g} days" if seconds % 86400 == 0 else f"{seconds}s"


def status(args) -> int:
    settings = open_db(args)
    data = ops.status(settings)
    data["exposed_files"] = privacy.exposed(settings)
    if args.json:
        print_json(data)
        return 0
    boxes = Table("mailboxes", "count", box=None, title_justify="left")
    for state in DISPLAY_STATES:
        boxes.add_row(Text(state, style=_STATE_STYLE[state]), str(data["mailboxes"].get(state, 0)))
    boxes.add_row("total", str(data["mailboxes"]["total"]))
    out.print(boxes)
    out.print()
    queues = Table("queue", "queued", "started", "scheduled", "deferred", "failed", "finished", box=None)
    for q in data["queues"]:
        queues.add_row(q["name"], *(str(q[k]) for k in ("queued", "started", "scheduled", "deferred", "failed", "finished")))
    out.print(fit(queues))
    out.print()
    if data["workers"]:
        workers = Table("worker", "state", "polling", "heartbeat age", "ok", "failed", box=None)
        for w in data["workers"]:
            polling = w["current_mailbox_name"] or w["current_job_id"] or "-"
            age = span(w["heartbeat_age_s"]) if w["heartbeat_age_s"] is not None else "-"
            workers.add_row(
                Text(literal(w["name"])),
                w["state"] + (" (stale)" if w["stale"] else ""),
                Text(literal(polling)),
                age,
                str(w["successes"]),
                str(w["failures"]),
            )
        out.print(fit(workers, drop=("polling",)))
    else:
        out.print("no workers running: start some with `mailq worker` (or `honcho start -c worker=N`)")
    sched = data["scheduler"]
    out.print(
        f"scheduler: {'running' if sched['alive'] else 'NOT RUNNING (start `mailq scheduler`)'}"
        f"{', last reconcile ' + sched['last_reconcile_at'] if sched['last_reconcile_at'] else ''}"
    )
    polls = data["poll_history"]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(polls["outcomes"].items())) or "none"
    bounds = f"kept {_age(polls['keep_s'])}, at most {polls['keep_per_mailbox'] or 'unbounded'} per mailbox"
    out.print(f"polls in the last hour: {outcomes}; history since {polls['oldest_at'] or '-'} ({bounds})")
    out.print(f"failed jobs: {data['failed']}" + (" (see `mailq failed list`)" if data["failed"] else ""))
    if data["exposed_files"]:
        err.print(
            Text(
                f"warning: {len(data['exposed_files'])} stored file(s) can be read by other users (e.g. {data['exposed_files'][0]}): "
                "run `mailq db upgrade` to make them owner-only"
            )
        )
    return 0
