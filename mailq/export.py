"""Export stored messages, byte for byte, as ``.eml`` files or one mboxrd file; resumable.

``.eml``: one file per message, ``DIR/<id>.eml``, written to a temporary name
and renamed, so a file with its final name is always complete and a rerun skips
it. mbox: the mboxrd variant (a ``From `` separator line; body lines matching
``>*From `` get one more ``>``, which ``read_mbox`` takes off again), so every
message comes back exactly as stored, CRLFs and all. A sidecar ``FILE.mailq-export``
records the last exported id and the file's length after it: a rerun truncates
whatever an interrupted run wrote past that point and continues after that id
(a rerun later also appends the messages stored since).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from . import api
from .config import Settings
from .db import errors_as_mailq
from .errors import UsageError
from .models import Message

STATE_SUFFIX = ".mailq-export"
_FROM_LINE = re.compile(rb"^(>*From )", re.M)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.M)
_SYNC_EVERY = 200  # messages between fsyncs of an mbox and its state


@dataclass
class ExportResult:
    written: int = 0
    skipped: int = 0  # already exported by an earlier run
    not_stored: int = 0  # rows without bytes (oversize): nothing to export
    bytes: int = 0


def count(mailbox_id: int | None, since: datetime | None, after: int = 0) -> int:
    with errors_as_mailq():
        query = Message.select().where(Message.id > after)
        if mailbox_id is not None:
            query = query.where(Message.mailbox == mailbox_id)
        if since is not None:
            query = query.where(api.dated_since(since))
        return query.count()


def _stored(settings: Settings, infos: Iterator[api.MessageInfo], result: ExportResult) -> Iterator[tuple[api.MessageInfo, bytes]]:
    store = api.store_for(settings)
    for info in infos:
        if info.sha256 is None:
            result.not_stored += 1
            yield info, b""
            continue
        yield info, api.read_blob(store, info.sha256, f"message {info.id}")


def export_eml(
    settings: Settings, directory: Path, *, mailbox_id: int | None = None, since: datetime | None = None, progress: Callable[[int], None]
) -> ExportResult:
    """Every message as ``directory/<id>.eml``; files already there with the stored size are kept."""
    directory.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    for info in api.messages_after(0, mailbox_id=mailbox_id, since=since, settings=settings):
        target = directory / f"{info.id}.eml"
        if info.sha256 is None:
            result.not_stored += 1
        elif target.is_file() and target.stat().st_size == info.size:
            result.skipped += 1
        else:
            data = api.read_blob(api.store_for(settings), info.sha256, f"message {info.id}")
            tmp = directory / f".{info.id}.eml.part"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            result.written += 1
            result.bytes += len(data)
        progress(1)
    return result


def _separator(info: api.MessageInfo) -> bytes:
    when = info.date or info.created_at
    return f"From mailq-{info.id}@localhost {when.strftime('%a %b %d %H:%M:%S %Y')}\n".encode()


def quote(data: bytes) -> bytes:
    """mboxrd quoting: every line starting with ``>*From `` gets one more ``>``."""
    return _FROM_LINE.sub(rb">\1", data)


def _read_state(path: Path, wanted: dict) -> tuple[int, int]:
    state_path = path.with_name(path.name + STATE_SUFFIX)
    if not state_path.is_file():
        if path.exists() and path.stat().st_size:
            raise UsageError(f"{path} exists and no unfinished export of it was found ({state_path.name}): pick a new file or remove it")
        return 0, 0
    state = json.loads(state_path.read_text())
    if state.get("filter") != wanted:
        raise UsageError(f"{path} was exported with other options ({state.get('filter')}): use the same options or a new file")
    return int(state["last_id"]), int(state["offset"])


def _write_state(path: Path, wanted: dict, last_id: int, offset: int) -> None:
    state_path = path.with_name(path.name + STATE_SUFFIX)
    tmp = state_path.with_name(state_path.name + ".part")
    tmp.write_text(json.dumps({"filter": wanted, "last_id": last_id, "offset": offset}))
    os.replace(tmp, state_path)


def export_mbox(
    settings: Settings, path: Path, *, mailbox_id: int | None = None, since: datetime | None = None, progress: Callable[[int], None]
) -> ExportResult:
    """Append every message after the recorded cursor to the mboxrd file ``path``."""
    wanted = {"mailbox": mailbox_id, "since": since.isoformat() if since else None}
    last_id, offset = _read_state(path, wanted)
    result = ExportResult()
    result.skipped = count(mailbox_id, since) - count(mailbox_id, since, after=last_id)
    progress(result.skipped)
    with open(path, "ab") as fh:
        fh.truncate(offset)  # drop what an interrupted run wrote after its last recorded message
        fh.seek(offset)
        pending = 0
        infos = api.messages_after(last_id, mailbox_id=mailbox_id, since=since, settings=settings)
        for info, data in _stored(settings, infos, result):
            if info.sha256 is not None:
                fh.write(_separator(info) + quote(data) + b"\n")
                result.written += 1
                result.bytes += len(data)
            last_id = info.id
            pending += 1
            progress(1)
            if pending >= _SYNC_EVERY:
                fh.flush()
                os.fsync(fh.fileno())
                _write_state(path, wanted, last_id, fh.tell())
                pending = 0
        fh.flush()
        os.fsync(fh.fileno())
        _write_state(path, wanted, last_id, fh.tell())
    return result


def read_mbox(path: Path) -> Iterator[bytes]:
    """The messages of an mboxrd file written by ``export_mbox``, exactly as they were stored."""
    data = Path(path).read_bytes()
    starts = [m.start() for m in re.finditer(rb"^From ", data, re.M)]
    for i, start in enumerate(starts):
        body_start = data.index(b"\n", start) + 1
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[body_start:end]
        yield _QUOTED_FROM.sub(rb"\1", chunk[:-1] if chunk.endswith(b"\n") else chunk)
