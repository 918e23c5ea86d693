"""Postfix's log into deliveries, errors and retries: the reader alone, then
`mailstats ingest-maillog` on files, standard input and a followed log, on both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from starlette.testclient import TestClient

from mailstats.cli import cli
from mailstats.reports.maillog import MaillogReader
from mailstats.settings import Settings
from tests.helpers import add_destinations, make_emailing

UTC = ZoneInfo("UTC")


def lines(qid: str, message_id: str, sender: str, *results: str) -> list[str]:
    """A queue ID's log lines as Postfix writes them, one `to=...` line per result."""
    out = [
        f"Dec  3 10:00:00 mx postfix/smtpd[100]: {qid}: client=localhost[127.0.0.1]",
        f"Dec  3 10:00:00 mx postfix/cleanup[101]: {qid}: message-id={message_id}",
        f"Dec  3 10:00:00 mx postfix/qmgr[102]: {qid}: from=<{sender}>, size=900, nrcpt=1 (queue active)",
    ]
    out += [
        f"Dec  3 10:00:0{n + 1} mx postfix/smtp[103]: {qid}: {r}" for n, r in enumerate(results)
    ]
    return [*out, f"Dec  3 10:00:09 mx postfix/qmgr[102]: {qid}: removed"]


SENT = "to=<{to}>, relay=mx.example.org[192.0.2.1]:25, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4F1)"
BOUNCED = (
    "to=<{to}>, relay=mx.example.org[192.0.2.1]:25, delay=0.2, delays=0/0/0/0.2, dsn=5.1.1, "
    "status=bounced (host mx.example.org[192.0.2.1] said: 550 5.1.1 <{to}>: Recipient address "
    "rejected: User unknown (in reply to RCPT TO command))"
)
DEFERRED = "to=<{to}>, relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to mx.example.org[192.0.2.1]:25: Connection refused)"


def test_reader_outcomes_and_counts() -> None:
    reader = MaillogReader(UTC)
    log = [
        *lines(
            "AB12C",
            "<x@y>",
            "a@y",
            DEFERRED.format(to="b@x"),
            DEFERRED.format(to="b@x"),
            SENT.format(to="b@x"),
        ),
        *lines("AB12D", "<z@y>", "a@y", BOUNCED.format(to="c@x")),
        "this is not a log line",
        "2026-12-03T10:00:05.123456+01:00 mx postfix/smtp[7]: AB12E: to=<d@x>, dsn=4.4.7, status=expired, returned to sender",
    ]
    got = [o for o in map(reader.feed, log) if o is not None]
    sent, bounced = got[0], got[1]
    assert (sent.kind, sent.attempts, sent.message_id, sent.status) == (
        "deliveries",
        3,
        "<x@y>",
        "2.0.0",
    )
    assert (bounced.kind, bounced.status, bounced.errorcode, bounced.errortype) == (
        "errors",
        "5.1.1",
        "550",
        "hard",
    )
    assert bounced.description == "550 5.1.1 <c@x>: Recipient address rejected: User unknown"
    assert len(got) == 2  # "expired" has no (...) reply here: the status still counts
    assert reader.counts["unknown"] == 1 and reader.counts["deferred"] == 2
    assert reader.queues == {}  # forgotten once removed


def test_ingest_maillog_files_and_stdin(
    http: TestClient, token: str, settings: Settings, tmp_path: Path
) -> None:
    emailing = make_emailing(http, token, '<a href="https://shop.example/">x</a>')
    ann, bob = add_destinations(
        http, token, emailing, {"email": "ann@example.org"}, {"email": "bob@example.org"}
    )
    auth = {"access_token": token}
    h_ann = http.get(f"/v2/ms/destination/{ann}/headers", params=auth).json()
    h_bob = http.get(f"/v2/ms/destination/{bob}/headers", params=auth).json()
    log = tmp_path / "mail.log"
    log.write_text("\n".join([
        # matched by the Message-ID the API gave
        *lines("AA001", h_ann["Message-ID"], "news@shop.example", DEFERRED.format(to="ann@example.org"), SENT.format(to="ann@example.org")),
        # matched by the VERP envelope sender, as the relay sends (the Message-ID is the sender's)
        *lines("AA002", "<own@shop.example>", h_bob["Return-Path"].strip("<>"), BOUNCED.format(to="bob@example.org")),
        # a message on its way into the relay: no destination of ours
        *lines("AA003", "<own@shop.example>", "news@shop.example", SENT.format(to="bob@example.org")),
        "garbage \x00 line",
    ]) + "\n")  # fmt: skip
    run = CliRunner()
    args = ["ingest-maillog", "--account", "acme", "--db", settings.db, "--log-timezone", "UTC"]
    out = run.invoke(cli, [*args, str(log)])
    assert out.exit_code == 0, out.output
    assert "2 event(s) stored" in out.output and "1 result(s) of no destination" in out.output
    assert "(1 not understood)" in out.output
    deliveries = http.get(f"/v2/ms/destination/{ann}/deliveries", params=auth).json()["data"]
    assert [d["attempts"] for d in deliveries] == [2]
    [error] = http.get(f"/v2/ms/destination/{bob}/errors", params=auth).json()["data"]
    assert (error["status"], error["errorcode"], error["errortype"]) == ("5.1.1", "550", "hard")
    assert error["description"].startswith("550 5.1.1 <bob@example.org>: Recipient address")
    stats = http.get(f"/v2/ms/emailing/{emailing}/statistics", params=auth).json()
    assert stats["retries"] == {"total": 1, "unique": 1}
    # the same log again, from standard input: nothing is stored twice
    out = run.invoke(cli, args, input=log.read_text())
    assert out.exit_code == 0 and "0 event(s) stored" in out.output
    # a hard bounce read from the log suppresses the address
    listed = http.get("/v2/ms/suppressions", params=auth).json()
    assert [(s["email"], s["reason"]) for s in listed["data"]] == [("bob@example.org", "bounce")]


def _wait(check: object, what: str) -> None:
    """Wait for a condition that another process makes true (not a timing assertion)."""
    deadline = time.monotonic() + 60
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


def stop(follower: subprocess.Popen[str]) -> str:
    """End a follower as a service manager would; it exits cleanly and says what it read."""
    follower.send_signal(signal.SIGTERM)
    _, said = follower.communicate(timeout=30)
    assert follower.returncode == 0, said
    return said


def test_follow_remembers_where_it_stopped(
    http: TestClient, token: str, settings: Settings, tmp_path: Path
) -> None:
    emailing = make_emailing(http, token, '<a href="https://shop.example/">x</a>')
    dests = add_destinations(
        http, token, emailing, *({"email": f"r{n}@example.org"} for n in range(3))
    )
    auth = {"access_token": token}
    ids = [
        http.get(f"/v2/ms/destination/{d}/headers", params=auth).json()["Message-ID"] for d in dests
    ]
    log = tmp_path / "mail.log"
    log.write_text(
        "\n".join(lines("BB000", ids[0], "a@x", SENT.format(to="r0@example.org"))) + "\n"
    )

    def delivered() -> int:
        return int(http.get(f"/v2/ms/emailing/{emailing}/deliveries", params=auth).json()["total"])

    def follow() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "mailstats", "ingest-maillog", "--account", "acme", "--db",
             settings.db, "--log-timezone", "UTC", "--follow", str(log)],
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    first = follow()
    _wait(lambda: delivered() == 1, "the first delivery")
    with log.open("a") as fh:  # the log grows, a line written in two pieces
        fh.write("\n".join(lines("BB001", ids[1], "a@x", SENT.format(to="r1@example.org")))[:-20])
        fh.flush()
        fh.write(
            "\n".join(lines("BB001", ids[1], "a@x", SENT.format(to="r1@example.org")))[-20:] + "\n"
        )
    _wait(lambda: delivered() == 2, "the second delivery")
    assert "10 line(s)" in stop(first)
    with log.open("a") as fh:  # written while nobody follows
        fh.write("\n".join(lines("BB002", ids[2], "a@x", SENT.format(to="r2@example.org"))) + "\n")
    second = follow()
    _wait(lambda: delivered() == 3, "the third delivery")
    assert "5 line(s): 1 event(s) stored" in stop(second)
    # rotated: a new file under the same name is read from its start
    log.rename(tmp_path / "mail.log.1")
    log.write_text(
        "\n".join(lines("BB003", ids[0], "a@x", SENT.format(to="r0@example.org"))) + "\n"
    )
    third = follow()
    _wait(lambda: delivered() == 4, "the delivery after rotation")
    assert "5 line(s): 1 event(s) stored" in stop(third)


def test_a_full_mailbox_is_a_soft_error_though_its_code_is_permanent() -> None:
    reader = MaillogReader(UTC)
    full = (
        "to=<{to}>, relay=mx.example.org[192.0.2.1]:25, delay=0.2, delays=0/0/0/0.2, dsn=5.2.2, "
        "status=bounced (host mx.example.org[192.0.2.1] said: 552 5.2.2 <{to}>: Mailbox full "
        "(in reply to RCPT TO command))"
    )
    got = [o for o in map(reader.feed, lines("AB12F", "<f@y>", "a@y", full.format(to="f@x"))) if o]
    assert [(o.kind, o.status, o.errorcode, o.errortype) for o in got] == [
        ("errors", "5.2.2", "552", "soft")  # the address will accept mail again
    ]
