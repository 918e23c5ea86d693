"""Messages per second through the SMTP relay against the same messages sent straight to its
next hop, in the same run: bench/relay.py [--backend sqlite|postgres] [--messages N].

Each message is 20 KB of HTML with 20 links, to one recipient (a new one each time, so each
is a new destination), sent over 8 SMTP connections at once. The next hop is an SMTP server
that counts and drops (tests/smtp_sink.py) in a process of its own, the relay is
`mailstats relay` in another, and the senders are threads of this one. The ceiling is the
same messages, same connections, sent straight to that next hop. Prints one JSON line per
figure (bench/results.py) and a line with both rates and their ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from results import Goal, Result, emit  # noqa: E402

CONNECTIONS = 8
ROUNDS = 3
GOAL = Goal("ratio", ">=", 0.25)


def html(n: int) -> str:
    """About 20 KB of HTML with 20 links."""
    para = "<p>" + "Autumn offers for the whole family, while stocks last. " * 8 + "</p>\n"
    links = "".join(
        f'<p><a href="https://shop.example/p/{k}?utm_source=mail&amp;n={n}">Product {k}</a></p>\n'
        + para
        for k in range(20)
    )
    return f"<html><head><title>Sale</title></head><body>\n{links}</body></html>\n"


def messages(count: int, tag: str) -> list[tuple[str, bytes]]:
    out = []
    for n in range(count):
        msg = EmailMessage()
        msg["From"] = "Shop <news@shop.example>"
        msg["To"] = rcpt = f"r{tag}{n}@example.org"
        msg["Subject"] = "Autumn sale"
        msg["Message-ID"] = f"<{tag}{n}@shop.example>"
        msg["X-Mailstats-Emailing"] = "bench"
        msg.set_content("Autumn sale: https://shop.example/\n")
        msg.add_alternative(html(n), subtype="html")
        out.append((rcpt, msg.as_bytes(policy=SMTP)))
    return out


def send_all(port: int, batch: list[tuple[str, bytes]], login: tuple[str, str] | None) -> float:
    """Seconds to send every message over CONNECTIONS connections; every one must get 250."""
    shares = [batch[i::CONNECTIONS] for i in range(CONNECTIONS)]
    failures: list[str] = []

    def sender(share: list[tuple[str, bytes]]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
                if login:
                    smtp.login(*login)
                for rcpt, data in share:
                    smtp.sendmail("news@shop.example", [rcpt], data)
        except (OSError, smtplib.SMTPException) as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=sender, args=(share,)) for share in shares]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"sending failed: {failures[0]}")
    return took


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a server did not start ({proc.args})") from None
            time.sleep(0.1)


def serve_sink(port: int) -> None:
    """The next hop, in its own process: counts and drops until SIGTERM."""
    from tests.smtp_sink import Sink

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Sink(keep=False, port=port) as sink:
        stop.wait()
        print(sink.count, flush=True)


def measure(backend: str, count: int, workers: int = 2, db: str | None = None) -> Result:
    """The relay's figure on `backend`: a fresh database unless `db` names one."""
    from mailstats.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="mailstats-bench-relay-"))
    made = db is None and backend == "postgres"
    if db is None:
        db = (
            fresh_postgres("mailstats_bench_relay")
            if backend == "postgres"
            else str(folder / "relay.db")
        )
    store = open_store(db)
    token = store.create_token("bench", "Europe/Amsterdam")
    store.close()
    python = sys.executable
    sink_port, relay_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sink = subprocess.Popen([python, __file__, "--serve-sink", str(sink_port)], env=env,
                            stdout=subprocess.PIPE)  # fmt: skip
    relay = subprocess.Popen(
        [python, "-m", "mailstats", "relay", "--db", db, "--listen", f"127.0.0.1:{relay_port}",
         "--next-hop", f"127.0.0.1:{sink_port}", "--public-url", "https://t.example.com",
         "--workers", str(workers)],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(sink_port, sink)
        wait_listening(relay_port, relay)
        login = ("bench", token)
        warm = max(100, count // 10)
        send_all(relay_port, messages(warm, "w"), login)  # unmeasured: caches, first emailing
        send_all(sink_port, messages(warm, "v"), None)
        # Rounds of each, one after the other, so that other load on the machine falls on
        # both alike; each figure is the median of its rounds.
        straights, throughs = [], []
        for k in range(ROUNDS):
            straights.append(count / send_all(sink_port, messages(count, f"s{k}-"), None))
            throughs.append(count / send_all(relay_port, messages(count, f"r{k}-"), login))
        straight, through = statistics.median(straights), statistics.median(throughs)
    finally:
        relay.send_signal(signal.SIGTERM)
        relay.wait(60)
        sink.send_signal(signal.SIGTERM)
        received, _ = sink.communicate(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
        if made:
            drop_postgres("mailstats_bench_relay")
    expected = 2 * warm + 2 * ROUNDS * count
    if int(received or 0) != expected:
        raise RuntimeError(f"the next hop got {received!r} messages, not {expected}")
    note = (f"median of {ROUNDS} rounds of {count} messages of 20 KB HTML with 20 links, one "
            f"recipient each, over {CONNECTIONS} connections, relay with {workers} worker(s); "
            "ceiling: the same sent straight to the next hop")  # fmt: skip
    return Result("relay", backend, through, "messages/s", straight, GOAL, note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--messages", type=int, default=2000, help="per round and path")
    parser.add_argument("--workers", type=int, default=2, help="relay processes [default 2]")
    parser.add_argument("--db", help="database [default: a new SQLite file, or a new "
                        "PostgreSQL database mailstats_bench_relay]")  # fmt: skip
    parser.add_argument("--serve-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return
    result = measure(args.backend, args.messages, args.workers, args.db)
    emit(result, [])
    assert result.ceiling is not None and result.ratio is not None
    print(f"relay ({args.backend}): {result.value:.1f} messages/s through the relay, "
          f"{result.ceiling:.1f} messages/s straight to the next hop, ratio {result.ratio:.3f} "
          f"(goal >= {GOAL.limit})")  # fmt: skip


def fresh_postgres(name: str) -> str:
    import psycopg

    server = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server}/{name}"


def drop_postgres(name: str) -> None:
    import psycopg

    server = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
    with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
