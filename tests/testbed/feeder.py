"""New mail keeps arriving: deliver generated messages to random test-bed mailboxes at a steady rate.

Used by the demo (so the console shows a live farm), by the benchmark's
latency phase and by the chaos harness. Every delivery is recorded (user,
Message-ID, time it became visible to Dovecot), so callers can measure
append-to-stored latency and check that nothing was lost.

Messages are dropped into the maildir's ``new/`` like a local delivery agent
would; Dovecot sees them on the next access to the folder.

Run standalone: ``python -m tests.testbed.feeder --root var/testbed --rate 0.5``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.testbed.dovecot import Dovecot
from tests.testbed.mailgen import make_message

DEFAULT_MAX_BYTES = 1024 * 1024
"""Largest fed message: the realistic mix, minus the multi-megabyte tail (keeps a demo light)."""

_MESSAGE_ID = re.compile(rb"^Message-ID: <[^>\r\n]*>", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class Delivery:
    """One message handed to Dovecot: who got it, its Message-ID (with <>), and when (epoch seconds)."""

    user: str
    message_id: str
    t: float


OnDelivered = Callable[[str, str, float], None]


def _run_tag() -> str:
    """Distinguishes this feeder's Message-IDs from every other run's and from the injected corpus."""
    return f"{int(time.time() * 1000):x}{os.getpid():x}"


def make_fed_message(rng: random.Random, index: int, tag: str, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[str, bytes]:
    """A realistic message whose Message-ID is unique to (tag, index); returns (message_id, raw)."""
    raw = make_message(rng, index, max_bytes=max_bytes)
    message_id = f"<feed-{tag}-{index}@mailgen.example>"
    return message_id, _MESSAGE_ID.sub(f"Message-ID: {message_id}".encode(), raw, count=1)


def feed(
    dovecot: Dovecot,
    users: Sequence[str],
    rate_per_s: float,
    stop_event: threading.Event,
    rng: random.Random | None = None,
    on_delivered: OnDelivered | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limit: int | None = None,
) -> list[Delivery]:
    """Deliver to random users at ``rate_per_s`` (Poisson arrivals) until stop_event is set.

    Arrival times are random (exponential gaps), so polls see mail at every
    point of their interval. Stops early after ``limit`` messages if given.
    Returns every delivery, in order; ``on_delivered(user, message_id, t)`` is
    called right after each one (t = when the file became visible).
    """
    if rate_per_s <= 0:
        raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
    if not users:
        raise ValueError("no users to feed")
    rng = rng or random.Random()
    tag = _run_tag()
    delivered: list[Delivery] = []
    for index in itertools.count():
        if limit is not None and index >= limit:
            break
        if stop_event.wait(rng.expovariate(rate_per_s)):
            break
        user = rng.choice(users)
        message_id, raw = make_fed_message(rng, index, tag, max_bytes)
        dovecot.deliver(user, raw)
        delivery = Delivery(user, message_id, time.time())
        delivered.append(delivery)
        if on_delivered is not None:
            on_delivered(delivery.user, delivery.message_id, delivery.t)
    return delivered


class FeederThread(threading.Thread):
    """feed() in a background thread; stop() ends it and returns the deliveries."""

    def __init__(
        self,
        dovecot: Dovecot,
        users: Sequence[str],
        rate_per_s: float,
        seed: int | None = None,
        on_delivered: OnDelivered | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        super().__init__(name="mailq-feeder", daemon=True)
        self.stop_event = threading.Event()
        self.deliveries: list[Delivery] = []
        self.error: BaseException | None = None
        self._args = (dovecot, list(users), rate_per_s, self.stop_event, random.Random(seed), on_delivered, max_bytes)

    def run(self) -> None:
        try:
            self.deliveries = feed(*self._args)
        except BaseException as exc:  # surfaced by stop(): a feeder that died must not look like "no mail"
            self.error = exc

    def stop(self, timeout: float = 10.0) -> list[Delivery]:
        self.stop_event.set()
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.deliveries


# -- standalone process (demo Procfile entry, chaos harness) -------------------------------


def _testbed_dovecot(root: Path) -> Dovecot:
    from tests.testbed.cli import load_state

    state = load_state(root)
    if not state:
        raise SystemExit(f"feeder: no test bed in {root} (run scripts/testbed start first)")
    return Dovecot(root, imap_port=state["imap_port"], imaps_port=state["imaps_port"])


def _printer(record: Path | None) -> OnDelivered:
    """Print each delivery (and append it as a JSON line to `record`, flushed, for later checks)."""
    out = open(record, "a", buffering=1) if record else None

    def on_delivered(user: str, message_id: str, t: float) -> None:
        print(f"new mail for {user}: {message_id}", flush=True)
        if out is not None:
            out.write(json.dumps(asdict(Delivery(user, message_id, t))) + "\n")

    return on_delivered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.testbed.feeder", description="Deliver generated mail to random test-bed mailboxes until stopped."
    )
    parser.add_argument("--root", default="var/testbed", help="test bed directory (default ./var/testbed)")
    parser.add_argument("--rate", type=float, default=0.5, help="messages per second in all (default 0.5)")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="largest message")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: different each run)")
    parser.add_argument("--record", type=Path, default=None, help="append each delivery as a JSON line here")
    args = parser.parse_args(argv)
    dovecot = _testbed_dovecot(Path(args.root).absolute())
    users = list(dovecot.users())
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"feeding {len(users)} mailboxes at {args.rate:g} message(s)/s", flush=True)
    done = feed(dovecot, users, args.rate, stop, random.Random(args.seed), _printer(args.record), args.max_bytes)
    print(f"feeder stopped after {len(done)} message(s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
