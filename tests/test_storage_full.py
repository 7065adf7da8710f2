"""A full disk under the blob store is recorded as a storage error (kind ``storage``), not a bug."""

from __future__ import annotations

import os
import subprocess

import pytest

from mailq.models import Mailbox, PollRun
from mailq.poll import poll_mailbox

from .farm_helpers import add_mailboxes

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB tmpfs: a real file system that fills up (needs root, as CI and scripts/test run)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs here ({proc.stderr.strip()}); run as root"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI is set: the full-disk test must run)", pytrace=False)
        pytest.skip(reason)  # a developer's unprivileged run; CI (root) always runs it
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk_is_recorded_as_a_storage_error(settings, dovecot, tiny_disk):
    settings = settings.replace(storage_url=f"file://{tiny_disk}")
    ((box, _, _),) = add_mailboxes(settings, dovecot, "full", [12], max_bytes=20_000)
    result = poll_mailbox(settings, box.id)
    assert (result.outcome, result.error_class) == ("error", "storage")
    assert "check disk space" in result.error_text
    run = PollRun.select().where(PollRun.mailbox == box.id).get()
    assert (run.outcome, run.error_class) == ("error", "storage")
    mailbox = Mailbox.get_by_id(box.id)
    assert (mailbox.state, mailbox.last_error_class) == ("failing", "storage") and mailbox.next_attempt_at is not None
