"""`scripts/chaos [--quick] [--seed N] [--db sqlite|postgresql] [--scenario NAME ...] [--json FILE]`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tests.chaos.runner import Result, run_scenario
from tests.chaos.scenarios import SCENARIOS

console = Console(highlight=False)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chaos", description="Fault injection against a private mailq farm: nothing lost, nothing stored twice."
    )
    p.add_argument("--quick", action="store_true", help="every scenario at a reduced size (about five minutes)")
    p.add_argument("--seed", type=int, default=0, help="seed for random moments, victims and the mix (default 0)")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite", help="database backend")
    p.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as a JSON list")
    p.add_argument("--root", help="directory for the farms' temporary trees (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep every farm's tree (logs, maildirs, database)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return p


def table(results: list[Result], title: str) -> Table:
    t = Table(title=title)
    for col in ("scenario", "trials", "messages", "lost", "duplicated", "recovery_s"):
        t.add_column(col, justify="left" if col == "scenario" else "right", no_wrap=True)
    for r in results:
        style = "green" if r.ok else "red"
        t.add_row(
            Text(r.scenario, style=style),
            str(r.trials),
            str(r.messages),
            Text(str(r.lost), style=style),
            Text(str(r.duplicated), style=style),
            "—" if r.recovery_s is None else f"{r.recovery_s:.1f}",
        )
    return t


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        for s in SCENARIOS.values():
            console.print(Text(f"{s.name:16} {s.doc}"))
        return 0
    names = args.scenario or list(SCENARIOS)
    root = Path(args.root) if args.root else None
    if root:
        root.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    started = time.monotonic()
    for name in names:
        where = SCENARIOS[name].db or args.db
        if SCENARIOS[name].storage != "file":
            where += f" + {SCENARIOS[name].storage}"
        console.print(Text(f"▶ {name} ({'quick' if args.quick else 'full'}, seed {args.seed}, {where})"))
        result = run_scenario(
            name,
            quick=args.quick,
            seed=args.seed,
            db_kind=args.db,
            root=root,
            keep=args.keep,
            log=lambda line: console.print(Text(line), style="dim"),
        )
        results.append(result)
        mark = "ok" if result.ok else "FAILED"
        console.print(
            Text(
                f"  {mark}: {result.messages} messages, lost {result.lost}, duplicated "
                f"{result.duplicated}, {result.notes.get('elapsed_s')}s"
                + (f" — {result.notes['problem']}" if "problem" in result.notes else "")
            )
        )
        if args.json:  # written after every scenario, so a long run leaves partial results behind
            Path(args.json).write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    elapsed = time.monotonic() - started
    forced = {SCENARIOS[n].db for n in names}
    where = forced.pop() if len(forced) == 1 and None not in forced else args.db  # e.g. host-loss: always PostgreSQL
    console.print(table(results, f"chaos ({'quick' if args.quick else 'full'}, seed {args.seed}, {where}, {elapsed:.0f}s)"))
    for r in results:
        shown = {k: v for k, v in r.notes.items() if k not in ("logs",)}
        console.print(Text(f"{r.scenario}: {json.dumps(shown, default=str)}"), style="dim" if r.ok else "red")
    return 0 if all(r.ok for r in results) else 1
