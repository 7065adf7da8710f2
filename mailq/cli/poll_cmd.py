"""``mailq poll (ID... | --all) [--wait]`` and ``mailq poll ID --inline``."""

from __future__ import annotations

from rich.text import Text

from .. import mailboxes, ops
from ..db import errors_as_mailq
from ..errors import UsageError
from ..models import Mailbox
from ..ops.mailboxes import poll_outcomes
from ..poll import poll_mailbox
from ..states import Outcome
from ..text import literal, one_line
from .common import add_json, open_db, out, print_json


def register(sub) -> None:
    p = sub.add_parser("poll", help="poll mailboxes now (through the workers, or --inline in this process)")
    p.add_argument("refs", nargs="*", metavar="ID", help="mailbox ids or names")
    p.add_argument("--all", action="store_true", help="every enabled mailbox")
    p.add_argument("--wait", action="store_true", help="block until the polls have finished")
    p.add_argument("--timeout", type=float, default=300, help="with --wait: give up after this many seconds")
    p.add_argument("--inline", action="store_true", help="run the poll in this process; no Redis or worker needed")
    add_json(p)
    p.set_defaults(handler=poll)


def _targets(args) -> list[Mailbox]:
    if args.all and args.refs:
        raise UsageError("give mailbox ids or --all, not both")
    if args.all:
        with errors_as_mailq():
            return list(Mailbox.select().where(Mailbox.paused == False).order_by(Mailbox.id))  # noqa: E712
    if not args.refs:
        raise UsageError("name at least one mailbox id, or --all")
    return [mailboxes.get(ref) for ref in args.refs]


def poll(args) -> int:
    settings = open_db(args)
    targets = _targets(args)
    if args.inline:
        return _inline(settings, targets, args.json)
    job_ids = ops.poll_now(settings, [m.id for m in targets], wait=args.wait, timeout=args.timeout)
    if not args.wait:
        if args.json:
            print_json({"enqueued": job_ids})
        else:
            out.print(f"enqueued {len(job_ids)} poll(s)")
        return 0
    results = poll_outcomes(settings, [m.id for m in targets], job_ids)
    if args.json:
        print_json({"enqueued": job_ids, "results": results})
    else:
        for mailbox, result in zip(targets, results):
            out.print(Text(outcome_line(mailbox.name, result)))
    return 1 if any(r.get("outcome") in ("error", "auth_error") for r in results) else 0


def outcome_line(name: str, result: dict) -> str:
    """``NAME: ok, 1 folder(s) checked, 3 new, 0 skipped, 0.42s — error`` (what --inline and --wait print)."""
    line = f"{literal(name)}: {result.get('outcome', 'unknown')}"
    if "folders_checked" in result:
        line += f", {result['folders_checked']} folder(s) checked, {result.get('new', 0)} new, {result.get('skipped', 0)} skipped"
    if result.get("duration_s") is not None:
        line += f", {result['duration_s']:.2f}s"
    error = result.get("error_text") or result.get("reason")
    if error:
        line += f" — {one_line(error)}"
    return line


def _inline(settings, targets: list[Mailbox], as_json: bool) -> int:
    results, failed = [], False
    for mailbox in targets:
        result = poll_mailbox(settings, mailbox.id, force=True)  # the operator asked: poll even while backing off
        results.append(result)
        failed = failed or result.outcome in (Outcome.ERROR, Outcome.AUTH_ERROR)
        if not as_json:
            out.print(Text(outcome_line(mailbox.name, result.as_dict())))
    if as_json:
        print_json([r.as_dict() for r in results])
    return 1 if failed else 0
