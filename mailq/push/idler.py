"""``mailq idler``: one asyncio loop holding thousands of IMAP IDLE connections, triggering polls on new mail.

The idler never fetches: on new mail it submits a poll through the scheduler's
claim path (``trigger.py``), so exactly-once, budgets, health and dispatch stay
in the worker. It holds a lease per mailbox (``leases.py``) and takes its fair
share of the pushable mailboxes; leases it fails to renew are dropped at once,
and if Redis stays unreachable for most of a lease TTL it closes everything, so
two idlers never hold one mailbox.

Connection care: every connect, login and DONE has an absolute deadline (the
poll path's connect/read timeouts); IDLE is re-issued every ``idle_refresh``;
a failed connection retries with exponential backoff plus jitter, and every
(re)connection passes one rate gate (``idler_connect_rate``), so after a server
restart the connections come back spread over time (``connecting.py``). A login rejection is
recorded once in the shared health (``auth_error``) and the idler stops trying
until the credentials change. One connection per mailbox (its INBOX, or its
first folder): one of a provider's ~15 per-account connections.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import resource
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import redis

from .. import db, health, logs
from ..config import Settings
from ..errors import AuthError, ImapError, MailqError
from ..queues import connect
from . import leases, status, trigger
from .client import IdleClient
from .connecting import Connector, Gate, backoff
from .targets import Target, Targets

log = logging.getLogger("mailq.idler")

TARGETS_REFRESH_S = 10.0
"""How often the idler re-reads which mailboxes are pushable (new, removed, paused, new password)."""
FLUSH_S = 0.2
"""How often states are published and wanted polls submitted: the coalescing window of a burst."""


class Idler:
    def __init__(self, settings: Settings, name: str | None = None):
        self.settings = settings
        self.name = name or f"idler-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.conn = connect(settings)
        self.ttl = settings.idler_lease_ttl
        self.targets: dict[int, Target] = {}
        self._targets = Targets()
        self.held: dict[int, asyncio.Task] = {}
        self.states: dict[int, str] = {}
        self._dirty: dict[int, str | None] = {}
        self._wanted: set[int] = set()
        self._waiting: dict[int, str] = {}
        self._renewed_at = 0.0
        self._gate = Gate(settings.idler_connect_rate)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mailq-idler")
        self._connector = Connector(settings, self._call)
        self._stop = asyncio.Event()
        self._refreshing = asyncio.Lock()
        self.submitted = 0

    # -- the loops --------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        log.info(
            "idler %s: capacity %d, lease ttl %.0fs, IDLE refresh %.0fs",
            self.name,
            self.settings.idler_capacity,
            self.ttl,
            self.settings.idle_refresh,
        )
        loops = [asyncio.create_task(f()) for f in (self._lease_loop, self._targets_loop, self._flush_loop, self._report_loop)]
        try:
            await self._stop.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _every(self, seconds: float, step, what: str) -> None:
        while True:
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except (redis.exceptions.RedisError, MailqError) as exc:
                log.warning("idler %s: %s failed, retrying: %s", self.name, what, exc)
            except Exception:
                log.exception("idler %s: %s failed (a bug), retrying", self.name, what)
            await asyncio.sleep(seconds)

    async def _targets_loop(self) -> None:
        await self._every(TARGETS_REFRESH_S, self._refresh_targets, "reading mailboxes")

    async def _lease_loop(self) -> None:
        await self._every(max(0.2, self.ttl / 3), self._lease_round, "renewing leases")

    async def _flush_loop(self) -> None:
        await self._every(FLUSH_S, self._flush, "submitting polls")

    async def _report_loop(self) -> None:
        async def report():
            counts: dict[str, int] = {}
            for state in self.states.values():
                counts[state] = counts.get(state, 0) + 1
            log.info("idler %s: holding %d mailboxes %s, %d polls submitted", self.name, len(self.held), counts, self.submitted)

        await asyncio.sleep(5)
        await self._every(60, report, "reporting")

    async def _refresh_targets(self) -> None:
        def load():
            try:
                return self._targets.refresh(self.conn)
            finally:
                db.close()

        async with self._refreshing:  # the lease loop may ask for a first load at the same moment
            fresh = await self._call(load)
        old, self.targets = self.targets, fresh
        for mid in list(self.held):
            if mid not in fresh:
                await self._drop(mid, release=True)
            elif mid in old and not fresh[mid].same_connection(old[mid]):
                await self._drop(mid, release=False)
                self._start(mid)

    async def _lease_round(self) -> None:
        """Heartbeat, renew, then move toward the fair share: shed a surplus or claim free leases."""
        if not self.targets and not self.held:
            await self._refresh_targets()
        ids = list(self.held)
        try:
            live, lost = await self._call(self._renew, ids)
        except redis.exceptions.RedisError:
            if self.held and time.monotonic() - self._renewed_at > self.ttl * 0.8:
                log.warning("idler %s: Redis unreachable for most of a lease TTL: closing all connections", self.name)
                for mid in list(self.held):
                    await self._drop(mid, release=False)
            raise
        self._renewed_at = time.monotonic()
        for mid in lost:
            log.warning("idler %s: lease of mailbox %s lost: closing its connection", self.name, mid)
            await self._drop(mid, release=False)
        share = min(self.settings.idler_capacity, math.ceil(len(self.targets) / live))
        step = max(1, int(self.settings.idler_connect_rate * self.ttl / 3))  # a round's worth of connects: no herd
        surplus = len(self.held) - share
        if surplus > 0:
            for mid in random.sample(list(self.held), min(surplus, step)):
                await self._drop(mid, release=True)
        elif surplus < 0:
            free = [m for m in self.targets if m not in self.held]
            random.shuffle(free)
            taken = await self._call(leases.claim, self.conn, self.name, free, min(-surplus, step), self.ttl)
            for mid in taken:
                if mid in self.targets and mid not in self.held:
                    self._start(mid)

    def _renew(self, ids: list[int]) -> tuple[int, list[int]]:
        live = leases.heartbeat(self.conn, self.name, self.ttl)
        return live, leases.renew(self.conn, self.name, ids, self.ttl)

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        wanted, self._wanted = self._wanted, set()
        if not dirty and not wanted and not self._waiting:
            return
        try:
            self._waiting = await self._call(self._submit, dirty, wanted, dict(self._waiting))
        except BaseException:
            self._dirty = {**dirty, **self._dirty}
            self._wanted |= wanted
            raise

    def _submit(self, dirty: dict[int, str | None], wanted: set[int], waiting: dict[int, str]) -> dict[int, str]:
        if dirty:
            leases.publish_states(self.conn, self.name, dirty)
            fresh = [mid for mid, state in dirty.items() if state == leases.CONNECTED]
            if fresh:
                status.start_safety_windows(self.conn, fresh, self.settings.push_safety_interval)
        for mid, token in list(waiting.items()):
            if mid in wanted or not trigger.still_held(self.conn, mid, token):
                del waiting[mid]
                wanted.add(mid)
        for mid in wanted:
            target = self.targets.get(mid)
            if target is None:
                continue
            token = trigger.submit(self.settings, self.conn, mid, target.queue)
            self.submitted += 1
            if token is not None:
                waiting[mid] = token
        return waiting

    async def _shutdown(self) -> None:
        held = list(self.held)
        tasks = list(self.held.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await self._call(leases.release, self.conn, self.name, held)
            await self._call(leases.leave, self.conn, self.name)
        except redis.exceptions.RedisError as exc:
            log.warning("idler %s: could not release leases (they expire in %.0fs): %s", self.name, self.ttl, exc)
        self._executor.shutdown(wait=False)
        log.info("idler %s: stopped, %d connections closed", self.name, len(held))

    # -- one mailbox ------------------------------------------------------

    def _start(self, mid: int) -> None:
        self.held[mid] = asyncio.create_task(self._hold(mid), name=f"idle-{mid}")

    async def _drop(self, mid: int, *, release: bool) -> None:
        """Close the connection first, then give the lease back: never two connections for one mailbox."""
        task = self.held.pop(mid, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.states.pop(mid, None)
        self._dirty[mid] = None
        if release:
            await self._call(leases.release, self.conn, self.name, [mid])

    def _set_state(self, mid: int, state: str) -> None:
        if self.states.get(mid) != state:
            self.states[mid] = state
            self._dirty[mid] = state

    def want_poll(self, mid: int) -> None:
        self._wanted.add(mid)

    async def _hold(self, mid: int) -> None:
        failures = 0
        while True:
            target = self.targets.get(mid)
            if target is None:
                return
            self._set_state(mid, leases.RECONNECTING)
            await self._gate.take()
            client = IdleClient(target.where)
            try:
                await self._connector.connect(client, target)
                if "IDLE" not in client.capabilities:
                    await client.logout(1.0)
                    await self._no_idle(target)
                    return
                if failures or target.backing_off:
                    await self._call(self._end_backoff, mid)
                if target.uidnext is None or (client.uidnext or 0) > target.uidnext or failures:
                    self.want_poll(mid)  # mail may have come while nobody listened
                self._set_state(mid, leases.CONNECTED)
                failures = 0
                await self._idle(client, mid)
            except AuthError as exc:
                client.close()
                await self._park(target, exc)
                return
            except (ImapError, MailqError) as exc:
                client.close()
                failures += 1
                self._set_state(mid, leases.RECONNECTING)
                delay = backoff(failures)
                log.info("idler %s: mailbox %s: %s (reconnecting in %.1fs)", self.name, mid, exc, delay)
                await asyncio.sleep(delay)
            except Exception:
                client.close()
                failures += 1
                self._set_state(mid, leases.RECONNECTING)
                log.exception("idler %s: mailbox %s: unexpected error (a bug), reconnecting", self.name, mid)
                await asyncio.sleep(backoff(failures))
            except asyncio.CancelledError:
                await client.logout(1.0)
                raise
            finally:
                client.close()

    def _end_backoff(self, mid: int) -> None:
        try:
            health.end_backoff(mid)  # the server is back: a poll failed meanwhile must not delay the pushed one
        finally:
            db.close()

    async def _idle(self, client: IdleClient, mid: int) -> None:
        """IDLE, re-issued every ``idle_refresh``; DONE must be answered within the read timeout."""
        s = self.settings
        while True:
            await client.idle(s.read_timeout)
            deadline = time.monotonic() + s.idle_refresh
            while (left := deadline - time.monotonic()) > 0:
                event = await client.wait(left)
                if event is None:
                    break
                if event.new_mail:
                    self.want_poll(mid)
            if (await client.done(s.read_timeout)).new_mail:
                self.want_poll(mid)

    async def _no_idle(self, target: Target) -> None:
        level = logging.WARNING if target.push == "on" else logging.INFO
        log.log(level, "idler %s: mailbox %s: %s does not offer IDLE: polled only", self.name, target.id, target.where)
        await self._call(leases.mark_noidle, self.conn, target.id)
        await self._let_go(target.id)

    async def _park(self, target: Target, exc: AuthError) -> None:
        """One rejected login: record it like a poll would (auth_error), then wait for new credentials."""
        self._set_state(target.id, leases.PARKED)
        log.warning("idler %s: mailbox %s: %s", self.name, target.id, exc)

        def record():
            try:
                health.finish_error(health.start_run(target.id, worker=self.name), exc, self.settings)
            finally:
                db.close()

        try:
            await self._call(record)
        except MailqError as err:
            log.warning("idler %s: mailbox %s: could not record the login failure: %s", self.name, target.id, err)
            await asyncio.Event().wait()  # parked here until the mailbox leaves the targets and is dropped
        await self._let_go(target.id)  # auth_error in the database: no idler takes it until the credentials change

    async def _let_go(self, mid: int) -> None:
        """From inside the mailbox's own task: forget it and give its lease back."""
        self.targets.pop(mid, None)
        self.held.pop(mid, None)
        self.states.pop(mid, None)
        self._dirty[mid] = None
        await self._call(leases.release, self.conn, self.name, [mid])


def run(settings: Settings, name: str | None = None) -> None:
    """Run until SIGTERM/SIGINT; a Redis or database outage is waited out, not fatal."""

    logs.setup(settings)
    _raise_nofile()
    db.bind(settings.database_url)
    asyncio.run(Idler(settings, name).run())


def _raise_nofile() -> None:
    """Thousands of sockets need more than the usual 1,024 file descriptors."""

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
