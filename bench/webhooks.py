"""Webhook throughput: events pushed in signed batches by the dispatcher, against a ceiling of
the same receiver fed by a plain loop of POSTs (one event each, one kept-alive connection).

The receiver runs in a process of its own on loopback (tests/receiver.py) and counts what it
gets. The events are stored first (their outbox rows with them, as the derive step writes
them), then the dispatcher's rounds are timed until the outbox is empty.

    .venv/bin/python bench/webhooks.py --backend sqlite --events 20000

`--outage 60` instead takes the receiver down for a minute under load and checks that every
event still arrives, in order and verifiable, duplicates only under their first webhook-id.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from relay import drop_postgres, free_port, fresh_postgres, wait_listening  # noqa: E402
from results import Goal, Result, emit  # noqa: E402

from mailstats.kinds import CLICKS, IMPRESSIONS  # noqa: E402
from mailstats.settings import load  # noqa: E402
from mailstats.store import Event, open_store  # noqa: E402

GOAL = Goal("value", ">=", 5000, "events/s")
ROUNDS = 3
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0"


def serve_receiver(port: int) -> None:
    """The receiver, in its own process: counts events until SIGTERM, then prints them."""
    from tests.receiver import Receiver

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    receiver = Receiver(port=port).start()
    stop.wait()
    receiver.stop()
    print(sum(len(r.items) for r in receiver.received), flush=True)


def plain_loop(port: int, items: list[bytes]) -> float:
    """Seconds to POST each event on its own, one after the other."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the dispatcher does
    began = time.perf_counter()
    for body in items:
        conn.request("POST", "/hook", body, {"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the receiver answered {response.status}")
    took = time.perf_counter() - began
    conn.close()
    return took


def measure(backend: str, count: int, db: str | None = None) -> Result:
    """Batched against plain-loop throughput on `backend`, the median of ROUNDS rounds."""
    from mailstats.webhooks.dispatcher import Dispatcher

    folder = Path(tempfile.mkdtemp(prefix="mailstats-bench-webhooks-"))
    made = db is None and backend == "postgres"
    if db is None:
        db = (fresh_postgres("mailstats_bench_webhooks") if backend == "postgres"
              else str(folder / "webhooks.db"))  # fmt: skip
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    receiver = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(port)],
                                env=env, stdout=subprocess.PIPE)  # fmt: skip
    store = open_store(db)
    settings = load(environ={}, db=db, webhook_allowed_networks="127.0.0.1/32",
                    webhook_dispatch=False)  # fmt: skip
    sent = 0
    try:
        wait_listening(port, receiver)
        account = store.ensure_account("bench", "Europe/Amsterdam")
        emailing_id = store.create_emailing(account.id, subject="Bench", from_name="B",
                                         from_email="b@example.com",
                                         html='<a href="https://shop.example/p">p</a>',
                                         text=None, tags=(), type="mass",
                                         links=[(9, 31, "https://shop.example/p")])  # fmt: skip
        dests = store.create_destinations(account.id, emailing_id, [
            {"email": f"r{n}@example.org", "profile": str(n), "subprofile": None, "fields": {}}
            for n in range(100)])  # fmt: skip
        link = store.links(emailing_id)[0].id
        store.webhooks.create(account.id, f"http://127.0.0.1:{port}/hook", ["clicks"], "include")
        batched, plain = [], []
        for k in range(ROUNDS):
            now = int(time.time())
            events = [Event(CLICKS, secrets.token_bytes(16), now - n % 600, account.id,
                            emailing_id, dests[n % len(dests)], link, ("192.0.2.7", UA))
                      for n in range(count)]  # fmt: skip
            for at in range(0, count, 5000):
                store.insert_events(events[at : at + 5000])
            dispatcher = Dispatcher(store, settings, start=False)
            began = time.perf_counter()
            while any(h.pending for h in store.webhooks.all(account.id).rows):
                dispatcher.step()
            batched.append(count / (time.perf_counter() - began))
            dispatcher.close()
            sent += count
            # the ceiling: the same items, each posted alone
            items = [orjson.dumps([{"ID": str(n), "kind": "clicks", "round": k}])
                     for n in range(count)]  # fmt: skip
            plain.append(count / plain_loop(port, items))
            sent += count
    finally:
        store.close()
        receiver.send_signal(signal.SIGTERM)
        received, _ = receiver.communicate(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        if made:
            drop_postgres("mailstats_bench_webhooks")
    if int(received or 0) != sent:
        raise RuntimeError(f"the receiver got {received!r} events, not {sent}")
    value, ceiling = statistics.median(batched), statistics.median(plain)
    note = (f"median of {ROUNDS} rounds of {count} clicks in signed batches of "
            f"{settings.webhook_batch}, built from the events table; ceiling: the same "
            "receiver fed by a plain loop of one-event POSTs")  # fmt: skip
    return Result("webhooks", backend, value, "events/s", ceiling, GOAL, note)


def outage(backend: str, seconds: float, rate: int) -> str:
    """Clicks stored at `rate` per second for 3 x `seconds` while a running dispatcher pushes
    them; the receiver is down for the middle third. Checks that every event arrives, in
    order, each verifiable, duplicates only under their first webhook-id."""
    from standardwebhooks.webhooks import Webhook as Verifier
    from tests.receiver import Receiver

    from mailstats.webhooks.dispatcher import Dispatcher

    folder = Path(tempfile.mkdtemp(prefix="mailstats-bench-outage-"))
    db = (fresh_postgres("mailstats_bench_outage") if backend == "postgres"
          else str(folder / "outage.db"))  # fmt: skip
    store = open_store(db)
    settings = load(environ={}, db=db, webhook_allowed_networks="127.0.0.1/32",
                    webhook_dispatch=False, webhook_backoff=0.5, webhook_backoff_max=5,
                    webhook_timeout=2)  # fmt: skip
    receiver = first = Receiver(port=free_port()).start()
    try:
        account = store.ensure_account("bench", "Europe/Amsterdam")
        emailing_id = store.create_emailing(account.id, subject="Bench", from_name="B",
                                            from_email="b@example.com", html="<p>x</p>",
                                            text=None, tags=(), type="mass", links=[])  # fmt: skip
        dests = store.create_destinations(account.id, emailing_id, [
            {"email": f"r{n}@example.org", "profile": str(n), "subprofile": None, "fields": {}}
            for n in range(100)])  # fmt: skip
        _, secret = store.webhooks.create(account.id, receiver.url, ["impressions"], "include")
        dispatcher = Dispatcher(store, settings, interval=0.05)
        stored = 0
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < 3 * seconds:
            if first is receiver and elapsed >= seconds:
                receiver.stop()
                receiver = None  # type: ignore[assignment]
            if receiver is None and elapsed >= 2 * seconds:
                receiver = Receiver(port=first.port).start()
            due = int(elapsed * rate) - stored
            if due > 0:
                now = int(time.time())
                store.insert_events([Event(IMPRESSIONS, secrets.token_bytes(16), now,
                                           account.id, emailing_id, dests[(stored + n) % 100],
                                           0, ("192.0.2.7", UA, "desktop"))
                                     for n in range(due)])  # fmt: skip
                stored += due
            time.sleep(0.01)
        back = time.monotonic()
        while any(h.pending for h in store.webhooks.all(account.id).rows):
            time.sleep(0.05)
        caught_up = time.monotonic() - back
        dispatcher.close()
        verifier = Verifier(secret)
        arrived: list[int] = []
        first_id: dict[int, str] = {}
        requests = first.received + receiver.received
        for got in requests:
            for item in verifier.verify(got.body, got.headers):
                event_id = int(item["ID"])
                arrived.append(event_id)
                if (
                    first_id.setdefault(event_id, got.headers["webhook-id"])
                    != got.headers["webhook-id"]
                ):
                    raise RuntimeError(f"event {event_id} came again under another webhook-id")
        listed = [int(r[0]) for r in store.backend.fetch(
            "SELECT id FROM events WHERE kind = 2 ORDER BY id")]  # fmt: skip
        if list(dict.fromkeys(arrived)) != listed:
            raise RuntimeError("events missing or out of order")
    finally:
        store.close()
        if receiver is not None:
            receiver.stop()
        shutil.rmtree(folder, ignore_errors=True)
        if backend == "postgres":
            drop_postgres("mailstats_bench_outage")
    return (
        f"outage ({backend}): {stored} events at {rate}/s, receiver down {seconds:.0f} s "
        f"of {3 * seconds:.0f}; all {len(listed)} arrived in order and verified "
        f"({len(arrived) - len(listed)} duplicates, each under its first webhook-id), "
        f"{len(requests)} requests, outbox empty {caught_up:.1f} s after the load ended"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=20000, help="per round")
    parser.add_argument("--db", help="database [default: a new one]")
    parser.add_argument("--outage", type=float, metavar="SECONDS",
                        help="instead: take the receiver down this long under load")  # fmt: skip
    parser.add_argument("--rate", type=int, default=2000, help="events/s with --outage")
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return
    if args.outage:
        print(outage(args.backend, args.outage, args.rate))
        return
    result = measure(args.backend, args.events, args.db)
    emit(result, [])
    assert result.ceiling is not None
    print(f"webhooks ({args.backend}): {result.value:.0f} events/s in batches, "
          f"{result.ceiling:.0f} events/s by a plain loop of POSTs (goal >= {GOAL.limit:.0f})")  # fmt: skip


if __name__ == "__main__":
    main()
