"""The real farm (scheduler + workers as processes) over the hostile corpus.

Checks: every message stored raw and byte-identical, no failed job and no
traceback, no file written outside the blob root, and the CLI and the console
show hostile text literally (escape sequences neutralised, Rich markup shown as
brackets): subjects through the CLI and the console's messages view, and a
mailbox whose name is Rich markup.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailq import db
from mailq.models import Mailbox
from tests.chaos.farm import Farm
from tests.chaos.verify import verify_mailbox
from tests.console_helpers import screenshot_of_farm
from tests.corpus_hostile import ESC_SUBJECT, MARKERS, MARKUP_SUBJECT, all_messages
from tests.helpers import mailbox_add_args, wait_for

pytestmark = pytest.mark.slow

MARKUP_NAME = "[bold red]hostile[/bold red] box"
RAW_CONTROLS = ("\x1b", "\x9b", "\x07", "\x9d")


def _message_count(mailbox_id: int) -> int:
    try:
        (n,) = db.database.execute_sql("SELECT count(*) FROM message WHERE mailbox_id = %d" % mailbox_id).fetchone()
        return n
    finally:
        db.close()


def _stray_files(roots: list[Path]) -> list[str]:
    """Files anywhere under roots whose name carries a traversal marker."""
    found = []
    for root in roots:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for name in filenames + dirnames:
                if any(m in name for m in MARKERS):
                    found.append(os.path.join(dirpath, name))
    return found


def _shallow_strays() -> list[str]:
    found = []
    for top in (Path("/tmp"), Path("/"), Path.cwd(), Path.home()):
        try:
            found += [str(p) for p in top.iterdir() if any(m in p.name for m in MARKERS)]
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def hostile_farm(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    before = set(_shallow_strays())
    with Farm(root / "farm", db_kind="sqlite", interval=1) as farm:
        user = farm.add_mailboxes(1, prefix="hostile")[0]
        farm.cli(*mailbox_add_args(MARKUP_NAME, farm.dovecot.imap_port, user, "--interval", "1"), stdin=farm.passwords[user] + "\n")
        corpus = all_messages()
        farm.dovecot.deliver_many((user, raw) for _, raw in corpus)
        expected = farm.dovecot.message_count(user)
        farm.start_farm(workers=2)
        mailbox_id = farm.mailbox_ids[user]
        wait_for(lambda: _message_count(mailbox_id) >= expected, 120, f"{expected} hostile messages to be stored")
        ids = {m.name: m.id for m in Mailbox.select()}
        db.close()
        wait_for(lambda: _message_count(ids[MARKUP_NAME]) >= expected, 60, "the second mailbox to be stored")
        yield {
            "farm": farm,
            "user": user,
            "mailbox_id": mailbox_id,
            "markup_id": ids[MARKUP_NAME],
            "expected": expected,
            "corpus": corpus,
            "root": root,
            "strays_before": before,
        }


def test_the_corpus_is_big_enough():
    assert len(all_messages()) >= 40


def test_every_hostile_message_is_stored_raw_exactly_once(hostile_farm):
    farm, user = hostile_farm["farm"], hostile_farm["user"]
    for mailbox_id in (hostile_farm["mailbox_id"], hostile_farm["markup_id"]):
        verdict = verify_mailbox(farm.settings, farm.dovecot.imap_port, user, farm.passwords[user], mailbox_id)
        db.close()
        assert verdict.messages == hostile_farm["expected"]
        assert (verdict.lost, verdict.duplicated, verdict.extra, verdict.blob_bad) == (0, 0, 0, 0), verdict


def test_no_poll_crashed(hostile_farm):
    farm = hostile_farm["farm"]
    proc = farm.cli("failed", "list", "--json")
    data = json.loads(proc.stdout)
    jobs = data.get("jobs", data.get("failed", [])) if isinstance(data, dict) else data
    assert jobs == [], jobs
    assert "Traceback" not in farm.logs()
    assert farm.supervisor.crashes == 0
    runs = db.database.execute_sql("SELECT outcome, error_text FROM poll_run WHERE outcome NOT IN ('ok', 'running')").fetchall()
    db.close()
    assert runs == []


def test_nothing_is_written_outside_the_blob_root(hostile_farm):
    farm, root = hostile_farm["farm"], hostile_farm["root"]
    assert _stray_files([root, root.parent]) == []
    assert set(_shallow_strays()) - hostile_farm["strays_before"] == set()
    blob_root = Path(farm.settings.storage_url[len("file://") :])
    for path in blob_root.rglob("*"):
        if path.is_file():
            assert len(path.name) == 64 and all(c in "0123456789abcdef" for c in path.name), path
            assert path.parent.parent == blob_root and path.parent.name == path.name[:2], path
    var_files = {p.name for p in (farm.root / "var").iterdir() if p.is_file()}
    assert var_files <= {"mailq.db", "mailq.db-wal", "mailq.db-shm", "secret.key"}, var_files


def _subject_ids(mailbox_id: int) -> dict[str, int]:
    rows = db.database.execute_sql("SELECT id, subject FROM message WHERE mailbox_id = %d" % mailbox_id).fetchall()
    db.close()
    return {subject or "": row_id for row_id, subject in rows}


def test_the_cli_shows_hostile_text_literally(hostile_farm):
    farm = hostile_farm["farm"]
    listing = farm.cli("messages", "list", "--mailbox", str(hostile_farm["mailbox_id"])).stdout
    assert not any(c in listing for c in RAW_CONTROLS)
    assert "[bold red]" in listing
    subjects = _subject_ids(hostile_farm["mailbox_id"])
    markup_id = next(i for s, i in subjects.items() if "markup" in s and "[bold red]" in s)
    esc_id = next(i for s, i in subjects.items() if "RED ALERT" in s)
    shown = farm.cli("messages", "show", str(markup_id)).stdout
    assert MARKUP_SUBJECT in shown
    shown = farm.cli("messages", "show", str(esc_id)).stdout
    assert "RED ALERT" in shown and not any(c in shown for c in RAW_CONTROLS)
    as_json = json.loads(farm.cli("messages", "show", str(esc_id), "--json").stdout)
    assert as_json["subject"] == ESC_SUBJECT  # JSON carries the data itself, escaped by the JSON encoding
    for row in json.loads(farm.cli("messages", "list", "--mailbox", str(hostile_farm["mailbox_id"]), "--json").stdout):
        assert isinstance(row, dict)
    shown = farm.cli("mailbox", "list").stdout
    assert MARKUP_NAME in shown


def test_the_console_shows_hostile_text_literally(hostile_farm, tmp_path):
    farm = hostile_farm["farm"]
    svg = screenshot_of_farm(farm.env, ["mailboxes"], size=(160, 40))["mailboxes"]
    (tmp_path / "console.svg").write_text(svg)
    assert "\x1b" not in svg
    text = svg.replace("&#160;", " ")
    assert MARKUP_NAME in text, "the mailbox name was rendered as markup, not shown literally"


def test_the_console_messages_view_shows_hostile_subjects_literally(hostile_farm, tmp_path):
    rows = 2 * hostile_farm["expected"] + 20  # both mailboxes' messages on one screen, however their ids interleave
    svg = screenshot_of_farm(hostile_farm["farm"].env, ["messages"], size=(200, rows))["messages"]
    (tmp_path / "messages.svg").write_text(svg)
    assert "\x1b" not in svg and "\x07" not in svg
    text = svg.replace("&#160;", " ").replace("&amp;", "&")
    assert "[bold red]markup[/bold red]" in text, "a subject was rendered as markup, not shown literally"
    assert "\\x1b[2J\\x1b[31mRED" in text, "the escape sequence in a subject is not shown as text"
