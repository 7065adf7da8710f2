"""Server vs database: every message on the server stored exactly once, byte for byte.

For each mailbox the server's INBOX is read with `BODY.PEEK[]` (UIDVALIDITY, UID,
sha256 of the raw bytes) and compared with the message rows and the blob store:

- stored: a row with the same (folder, UIDVALIDITY, UID) and sha256, or - after
  a UIDVALIDITY change - a row with the same content under the old key
  (`rekeyed`); its blob must hold exactly the server's bytes;
- lost: no such row, or a blob that is missing or differs (`blob_bad`);
- duplicated: rows beyond the number of copies the server holds of that content;
- extra: rows whose content is nowhere on the server.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from imapclient import IMAPClient

from mailq import db
from mailq.errors import StorageError
from mailq.storage import open_store

FETCH_CHUNK = 500


@dataclass
class Verdict:
    messages: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    extra: int = 0
    rekeyed: int = 0
    mismatched: int = 0
    blob_bad: int = 0
    skipped: int = 0
    lost_detail: list[str] = field(default_factory=list)
    dup_detail: list[str] = field(default_factory=list)

    def add(self, other: Verdict) -> None:
        for name in ("messages", "stored", "lost", "duplicated", "extra", "rekeyed", "mismatched", "blob_bad", "skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lost_detail.extend(other.lost_detail[:20])
        self.dup_detail.extend(other.dup_detail[:20])


def server_messages(port: int, user: str, password: str, folder: str = "INBOX") -> tuple[int, list[tuple[int, bytes]]]:
    """(UIDVALIDITY, [(uid, raw)]) of one folder, read-only and without setting \\Seen."""
    with IMAPClient("127.0.0.1", port, ssl=False, timeout=60) as client:
        client.login(user, password)
        info = client.select_folder(folder, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        uids = sorted(client.search(["ALL"]))
        found: list[tuple[int, bytes]] = []
        for i in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[i : i + FETCH_CHUNK]
            data = client.fetch(chunk, ["BODY.PEEK[]"])
            for uid in chunk:
                found.append((uid, data[uid][b"BODY[]"]))
        client.logout()
    return uidvalidity, found


def db_rows(mailbox_id: int, folder: str = "INBOX") -> list[tuple[int, int, str | None]]:
    cursor = db.database.execute_sql(
        "SELECT uidvalidity, uid, sha256 FROM message WHERE mailbox_id = %d AND folder = %s" % (int(mailbox_id), db.database.param),
        (folder,),
    )
    return [(int(uv), int(uid), sha) for uv, uid, sha in cursor.fetchall()]


def verify_mailbox(settings, port: int, user: str, password: str, mailbox_id: int, folder: str = "INBOX") -> Verdict:
    verdict = Verdict()
    store = open_store(settings)
    uidvalidity, messages = server_messages(port, user, password, folder)
    rows = db_rows(mailbox_id, folder)
    by_key = {(uv, uid): sha for uv, uid, sha in rows}
    rows_by_sha = Counter(sha for _, _, sha in rows if sha)
    verdict.skipped = sum(1 for _, _, sha in rows if not sha)
    server_by_sha: Counter = Counter()
    verdict.messages = len(messages)
    for uid, raw in messages:
        sha = hashlib.sha256(raw).hexdigest()
        server_by_sha[sha] += 1
        key_sha = by_key.get((uidvalidity, uid))
        if key_sha == sha:
            ok = True
        elif rows_by_sha.get(sha):
            ok, verdict.rekeyed = True, verdict.rekeyed + 1
        else:
            ok = False
            if key_sha is not None:
                verdict.mismatched += 1
        if ok:
            try:
                ok = store.get(sha) == raw
            except StorageError:
                ok = False
            if not ok:
                verdict.blob_bad += 1
        if ok:
            verdict.stored += 1
        else:
            verdict.lost += 1
            verdict.lost_detail.append(f"{user} uidvalidity={uidvalidity} uid={uid} sha256={sha[:12]}")
    for sha, count in rows_by_sha.items():
        on_server = server_by_sha.get(sha, 0)
        if on_server == 0:
            verdict.extra += count
        elif count > on_server:
            verdict.duplicated += count - on_server
            keys = [(uv, uid) for uv, uid, s in rows if s == sha]
            verdict.dup_detail.append(f"{user} sha256={sha[:12]} rows={keys}")
    return verdict


def verify_farm(farm, users: list[str] | None = None) -> Verdict:
    """Compare every (or the given) mailbox of the farm; the database must be reachable."""
    total = Verdict()
    db.close()
    for user in users or list(farm.passwords):
        total.add(verify_mailbox(farm.settings, farm.dovecot.imap_port, user, farm.passwords[user], farm.mailbox_ids[user]))
    db.close()
    return total
