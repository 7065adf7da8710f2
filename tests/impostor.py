"""A misbehaving IMAP server for the tests: asyncio, one mode per misbehaviour, on a free loopback port.

Dovecot and Cyrus cannot be made to trickle, lie or babble; real servers in
the field do (customers' own servers, appliances, middleboxes). Each mode is
one misbehaviour; ``healthy`` is the same server behaving, as the control.
Messages get UIDs 1..n in one INBOX with UIDVALIDITY 7; the message with UID
``BAD_UID`` is the one the message-level modes misbehave on.

    with Impostor("huge_literal", messages) as server:
        ... port = server.port ...
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from dataclasses import dataclass, field

BAD_UID = 2
UIDVALIDITY = 7
HUGE = 300 * 1024 * 1024  # the literal "huge_literal" announces (and streams as long as the client reads)

MODES = {
    "healthy": "behaves (the control)",
    "silent": "accepts TCP, never greets",
    "trickle_greeting": "sends its greeting one byte at a time",
    "garbage": "random bytes instead of a greeting",
    "mute_examine": "greets, logs in, never answers EXAMINE",
    "chatter": "answers EXAMINE with an endless trickle of untagged lines, never the tagged reply",
    "endless_line": "answers EXAMINE with a line that never ends",
    "bye_mid_fetch": "sends one message of a FETCH, then BYE and closes",
    "drop_each": "closes the connection after answering each command (after LOGIN)",
    "drop_login": "closes the connection when LOGIN arrives, without a reply (a server going down mid-login)",
    "huge_literal": "announces RFC822.SIZE ~900, then sends a 300 MB literal for it",
    "trickle_literal": "sends a FETCH literal one byte at a time",
    "wrong_size": "announces an RFC822.SIZE twice the size of the body it sends",
    "literal8": "answers BODY.PEEK[] with RFC 3516 binary literals ~{n} (as Cyrus does)",
    "repeat_uids": "returns every UID twice in SEARCH and every FETCH response twice",
    "unasked_uids": "adds FETCH responses (with bodies) for UIDs that were not asked for",
    "malformed": "answers the body FETCH with malformed items (unbalanced parentheses)",
}

_TAGGED = re.compile(rb"^(\S+) (UID )?(\S+) ?(.*)$", re.IGNORECASE)


def _uid_set(text: str, top: int) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        a = top if lo == "*" else int(lo)
        b = a if not hi else (top if hi == "*" else int(hi))
        a, b = min(a, b), max(a, b)
        out.extend(range(a, min(b, top) + 1))
        if a > top and (lo == "*" or hi == "*"):
            out.append(top)
    return sorted(set(u for u in out if 1 <= u <= top))


@dataclass
class Impostor:
    mode: str
    messages: list[bytes] = field(default_factory=list)
    delay: float = 0.5  # seconds between bytes of a trickle
    port: int = 0
    connections: int = 0
    bytes_sent: int = 0

    def __post_init__(self) -> None:
        assert self.mode in MODES, self.mode
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server = None
        self._tasks: set[asyncio.Task] = set()

    # --- lifecycle -------------------------------------------------------------------------------------------------------

    def start(self) -> Impostor:
        self._thread = threading.Thread(target=self._run, name=f"impostor-{self.mode}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the impostor did not start")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._stopped = asyncio.Event()
        self._ready.set()
        await self._stopped.wait()
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._loop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread:
            self._thread.join(10)

    def __enter__(self) -> Impostor:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- protocol --------------------------------------------------------------------------------------------------------

    def _caps(self) -> bytes:
        caps = b"IMAP4rev1 AUTH=PLAIN UIDPLUS"
        return caps + (b" BINARY" if self.mode in ("literal8", "wrong_size") else b"")

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()

    async def _trickle(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        for i in range(len(data)):
            await self._send(writer, data[i : i + 1])
            await asyncio.sleep(self.delay)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._session(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
            except Exception:
                pass

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        if mode == "silent":
            await reader.read()  # until the client gives up
            return
        greeting = b"* OK [CAPABILITY " + self._caps() + b"] impostor ready\r\n"
        if mode == "trickle_greeting":
            await self._trickle(writer, greeting)
        elif mode == "garbage":
            await self._send(writer, os.urandom(512) + b"\r\n")
            await reader.read()
            return
        else:
            await self._send(writer, greeting)
        logged_in = False
        while True:
            line = await reader.readline()
            if not line:
                return
            m = _TAGGED.match(line.rstrip(b"\r\n"))
            if not m:
                await self._send(writer, b"* BAD what?\r\n")
                continue
            tag, uid_prefix, command, args = m.group(1), m.group(2), m.group(3).upper(), m.group(4).decode("latin-1")
            ok = tag + b" OK " + command + b" done\r\n"
            if command == b"CAPABILITY":
                await self._send(writer, b"* CAPABILITY " + self._caps() + b"\r\n" + ok)
            elif command == b"LOGIN" and mode == "drop_login":
                return
            elif command == b"LOGIN":
                logged_in = True
                await self._send(writer, tag + b" OK [CAPABILITY " + self._caps() + b"] logged in\r\n")
            elif command == b"LOGOUT":
                await self._send(writer, b"* BYE bye\r\n" + ok)
                return
            elif command == b"NOOP":
                await self._send(writer, ok)
            elif command == b"LIST":
                await self._send(writer, b'* LIST (\\HasNoChildren) "/" INBOX\r\n' + ok)
            elif command in (b"EXAMINE", b"SELECT"):
                if not await self._examine(reader, writer, ok):
                    return
            elif command == b"STATUS":
                n = len(self.messages)
                await self._send(writer, f"* STATUS INBOX (MESSAGES {n} UIDNEXT {n + 1} UIDVALIDITY {UIDVALIDITY})\r\n".encode() + ok)
            elif command == b"SEARCH" and uid_prefix:
                await self._search(writer, args, ok)
            elif command == b"FETCH" and uid_prefix:
                if not await self._fetch(writer, args, ok):
                    return
            else:
                await self._send(writer, tag + b" BAD unsupported\r\n")
            if mode == "drop_each" and logged_in:
                return

    async def _examine(self, reader, writer, ok: bytes) -> bool:
        mode = self.mode
        if mode == "mute_examine":
            await reader.read()
            return False
        if mode == "chatter":
            while True:
                await self._send(writer, b"* OK still thinking\r\n")
                await asyncio.sleep(self.delay)
        if mode == "endless_line":
            await self._send(writer, b"* OK ")
            chunk = b"x" * 65536
            while True:
                await self._send(writer, chunk)
        n = len(self.messages)
        await self._send(
            writer,
            f"* {n} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {UIDVALIDITY}] ok\r\n* OK [UIDNEXT {n + 1}] ok\r\n"
            "* FLAGS (\\Seen)\r\n".encode()
            + ok.replace(b" OK ", b" OK [READ-ONLY] "),
        )
        return True

    async def _search(self, writer, args: str, ok: bytes) -> None:
        top = len(self.messages)
        m = re.search(r"UID (\S+)", args, re.IGNORECASE)
        uids = _uid_set(m.group(1), top) if m and top else list(range(1, top + 1))
        if self.mode == "repeat_uids":
            uids = [u for u in uids for _ in (0, 1)]
        await self._send(writer, b"* SEARCH" + b"".join(b" %d" % u for u in uids) + b"\r\n" + ok)

    def _size(self, uid: int) -> int:
        size = len(self.messages[uid - 1])
        return size * 2 if self.mode == "wrong_size" and uid == BAD_UID else size

    async def _fetch(self, writer, args: str, ok: bytes) -> bool:
        uid_text, _, items = args.partition(" ")
        top = len(self.messages)
        uids = _uid_set(uid_text, top) if top else []
        items_up = items.upper()
        if "BODY.PEEK[]" in items_up or "BINARY.PEEK[]" in items_up:
            return await self._bodies(writer, uids, "BINARY" if "BINARY" in items_up else "BODY", ok)
        for uid in uids:
            parts = [f"UID {uid}"]
            if "RFC822.SIZE" in items_up:
                parts.append(f"RFC822.SIZE {self._size(uid)}")
            head = b""
            if "HEADER.FIELDS" in items_up:
                raw = self.messages[uid - 1]
                head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            line = f"* {uid} FETCH (" + " ".join(parts)
            if head:
                await self._send(writer, line.encode() + b" BODY[HEADER.FIELDS (SUBJECT)] {%d}\r\n" % len(head) + head + b")\r\n")
            else:
                await self._send(writer, line.encode() + b")\r\n")
        await self._send(writer, ok)
        return True

    async def _bodies(self, writer, uids: list[int], section: str, ok: bytes) -> bool:
        mode = self.mode
        for i, uid in enumerate(uids):
            raw = self.messages[uid - 1]
            marker = b"~{%d}" if mode == "literal8" else b"{%d}"
            head = b"* %d FETCH (UID %d %s[] " % (uid, uid, section.encode()) + marker % len(raw) + b"\r\n"
            if mode == "bye_mid_fetch" and i == 1:
                await self._send(writer, b"* BYE going away\r\n")
                return False
            if mode == "huge_literal" and uid == BAD_UID:
                await self._send(writer, b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (uid, uid, HUGE))
                chunk = b"y" * 65536
                for _ in range(HUGE // len(chunk)):
                    await self._send(writer, chunk)
                await self._send(writer, b")\r\n")
                continue
            if mode == "trickle_literal" and uid == BAD_UID:
                await self._send(writer, head)
                await self._trickle(writer, raw + b")\r\n")
                continue
            if mode == "malformed" and uid == BAD_UID:
                await self._send(writer, b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (uid, uid, len(raw)) + raw + b" (RFC822.SIZE ((\r\n")
                continue
            await self._send(writer, head + raw + b")\r\n")
            if mode == "repeat_uids":
                await self._send(writer, head + raw + b")\r\n")
            if mode == "unasked_uids":
                other = top = len(self.messages) + 100 + uid
                await self._send(writer, b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (top, other, len(raw)) + raw + b")\r\n")
        await self._send(writer, ok)
        return True
