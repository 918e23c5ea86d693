"""`mailstats watch-mailbox` against a real Dovecot on loopback (tests/dovecot.py), on both
backends: taken messages move, the rest stay marked and unread, IDLE wakes the watcher."""

from __future__ import annotations

import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from imapclient import IMAPClient

from mailstats import imap
from mailstats.cli import cli
from mailstats.kinds import KINDS
from mailstats.settings import Secret
from mailstats.store import Filter, Scope, Store
from tests.dovecot import Dovecot, dovecot_server
from tests.helpers import report_with_key

REPORTS = Path(__file__).parent / "fixtures" / "reports"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


@pytest.fixture
def user() -> str:
    """A mailbox of its own for each test (the server takes any login with the password)."""
    return f"bounces-{uuid.uuid4().hex[:8]}"


def client(server: Dovecot, user: str) -> IMAPClient:
    context = ssl.create_default_context(cafile=server.ca_file)
    c = IMAPClient("127.0.0.1", port=server.imaps_port, ssl=True, ssl_context=context)
    c.login(user, server.password)
    return c


def keys(store: Store) -> tuple[int, str, str]:
    """An account's destination: (id, its message key, another destination's key)."""
    account = store.ensure_account("acme", "Europe/Amsterdam")
    emailing = store.create_emailing(
        account.id, subject="Spring sale", from_name="Shop", from_email="news@example.com",
        html="<p>Hi</p>", text=None, tags=[], type="mass", links=[],
    )  # fmt: skip
    one, two = store.create_destinations(
        account.id, emailing, [{"email": "bob@example.org"}, {"email": "eve@example.org"}]
    )
    key = store.destination(account.id, one).message_key
    return one, key, store.destination(account.id, two).message_key


def errors(store: Store) -> list[tuple[object, ...]]:
    account = store.account("acme")
    return store.events(KINDS["errors"], Scope(account.id), Filter(), start=0, limit=100,
                        total=False).rows  # fmt: skip


def watch(db_url: str, server: Dovecot, user: str, *more: str, tls: str = "imaps") -> Result:
    port = server.imaps_port if tls == "imaps" else server.imap_port
    args = ["watch-mailbox", "--account", "acme", "--db", db_url, "--host", "127.0.0.1",
            "--port", str(port), "--user", user, "--tls", tls, "--ca-file", server.ca_file,
            "--once", *more]  # fmt: skip
    env = {"MAILSTATS_IMAP_PASSWORD": server.password}
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


@pytest.mark.parametrize("tls", ["imaps", "starttls"])
def test_taken_messages_move_and_the_rest_stay_unread_and_marked(
    store: Store, db_url: str, dovecot: Dovecot, user: str, tls: str
) -> None:
    dest, key, _ = keys(store)
    mailbox = client(dovecot, user)
    mailbox.append("INBOX", report_with_key("dsn/postfix_user_unknown.eml", key))
    mailbox.append("INBOX", report_with_key("autoreply/vacation.eml", key))
    mailbox.append("INBOX", report_with_key("plain/exim_user_unknown.eml", "ms-N0tOursAtAll"))
    mailbox.append("INBOX", b"From: someone@example.org\r\nSubject: hello\r\n\r\nHi!\r\n")

    result = watch(db_url, dovecot, user, tls=tls)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(
        "4 message(s): 1 taken, 1 not a bounce, 1 unmatched, 1 unreadable"
    )
    [row] = errors(store)
    assert row[KINDS["errors"].fields.index("destination")] == dest

    mailbox.select_folder("mailstats-taken")
    assert len(mailbox.search(["ALL"])) == 1
    mailbox.select_folder("INBOX")
    flags = mailbox.get_flags(mailbox.search(["ALL"]))
    assert len(flags) == 3  # nothing deleted
    assert all(b"\\Seen" not in f and b"\\Deleted" not in f for f in flags.values())
    assert sorted(f for fs in flags.values() for f in fs) == sorted(imap.SKIPPED.values())

    again = watch(db_url, dovecot, user, tls=tls)  # each message is read once
    assert again.stdout.strip().endswith("0 message(s): 0 taken, 0 not a bounce, "
                                         "0 unmatched, 0 unreadable")  # fmt: skip
    assert len(errors(store)) == 1
    mailbox.logout()


def test_idle_wakes_the_watcher_for_a_message_that_arrives_later(
    store: Store, dovecot: Dovecot, user: str
) -> None:
    _, key, other = keys(store)
    box = imap.Mailbox(host="127.0.0.1", port=dovecot.imaps_port, user=user,
                       password=Secret(dovecot.password), ca_file=dovecot.ca_file,
                       poll=3600)  # fmt: skip
    stop = threading.Event()
    said: list[str] = []
    watcher = threading.Thread(
        target=imap.watch, args=(store, store.account("acme"), box),
        kwargs={"stop": stop, "said": said.append},
    )  # fmt: skip
    mailbox = client(dovecot, user)
    mailbox.append("INBOX", report_with_key("dsn/postfix_user_unknown.eml", key))
    watcher.start()
    try:
        _until(lambda: len(errors(store)) == 1)
        # With a poll of an hour, only IDLE can bring the next one in.
        mailbox.append("INBOX", report_with_key("plain/qmail_no_mailbox.eml", other))
        _until(lambda: len(errors(store)) == 2, said)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive(), said
    mailbox.select_folder("mailstats-taken")
    assert len(mailbox.search(["ALL"])) == 2
    mailbox.logout()


def test_a_wrong_password_or_an_untrusted_certificate_is_a_clear_failure(
    db_url: str, store: Store, dovecot: Dovecot, user: str, tmp_path: Path
) -> None:
    keys(store)
    args = ["watch-mailbox", "--account", "acme", "--db", db_url, "--host", "127.0.0.1",
            "--port", str(dovecot.imaps_port), "--user", user, "--once"]  # fmt: skip
    wrong = CliRunner().invoke(cli, [*args, "--ca-file", dovecot.ca_file],
                               env={"MAILSTATS_IMAP_PASSWORD": "wrong"})  # fmt: skip
    assert wrong.exit_code == 75 and "IMAP:" in wrong.stderr
    untrusted = CliRunner().invoke(cli, args, env={"MAILSTATS_IMAP_PASSWORD": "x"})
    assert untrusted.exit_code == 75 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    missing = CliRunner().invoke(cli, args, env={"MAILSTATS_IMAP_PASSWORD": ""})
    assert missing.exit_code == 2 and "MAILSTATS_IMAP_PASSWORD" in missing.output


def _until(done: Callable[[], bool], said: object = None, limit: float = 60) -> None:
    """Wait for the watcher (a bound on a hung test, not a speed assertion)."""
    deadline = time.monotonic() + limit
    while not done():
        assert time.monotonic() < deadline, f"the watcher took nothing: {said}"
        time.sleep(0.05)


# A server that offers neither IDLE nor MOVE (its advertised capabilities cut down).
PLAIN_CAPABILITIES = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE UIDPLUS"


def test_without_idle_or_move_it_polls_and_copies_then_expunges_only_its_own(
    store: Store, user: str
) -> None:
    _, key, other = keys(store)
    with dovecot_server(PLAIN_CAPABILITIES) as server:
        box = imap.Mailbox(host="127.0.0.1", port=server.imaps_port, user=user,
                           password=Secret(server.password), ca_file=server.ca_file,
                           poll=0.2)  # fmt: skip
        mailbox = client(server, user)
        assert not mailbox.has_capability("IDLE") and not mailbox.has_capability("MOVE")
        mailbox.append("INBOX", report_with_key("dsn/postfix_user_unknown.eml", key))
        mailbox.append("INBOX", b"From: a@example.org\r\nSubject: hi\r\n\r\nHello\r\n")
        stop = threading.Event()
        said: list[str] = []
        watcher = threading.Thread(target=imap.watch, args=(store, store.account("acme"), box),
                                   kwargs={"stop": stop, "said": said.append})  # fmt: skip
        watcher.start()
        try:
            _until(lambda: len(errors(store)) == 1, said)
            mailbox.append("INBOX", report_with_key("plain/qmail_no_mailbox.eml", other))
            _until(lambda: len(errors(store)) == 2, said)
        finally:
            stop.set()
            watcher.join(timeout=30)
        assert not watcher.is_alive(), said
        mailbox.select_folder("INBOX")
        assert len(mailbox.search(["ALL"])) == 1  # the hello, left where it was
        mailbox.select_folder("mailstats-taken")
        assert len(mailbox.search(["ALL"])) == 2
        mailbox.logout()
