"""The `mailstats` command: tokens, demo data, export and report ingestion, on both backends."""

from __future__ import annotations

import csv
import io
import json
import mailbox
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from mailstats import demo_data
from mailstats.cli import cli
from mailstats.kinds import KINDS
from mailstats.store import Filter, Scope, Store, open_store
from mailstats.timefmt import format_time
from tests.helpers import report_with_key

REPORTS = Path(__file__).parent / "fixtures" / "reports"
CLICKS = KINDS["clicks"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def db(db_url: str) -> Iterator[Store]:
    """The test database, opened (and migrated) once; the commands open their own."""
    store = open_store(db_url)
    yield store
    store.close()


@pytest.fixture
def demo_db(db_url: str, db: Store) -> str:
    """A small demo account ("demo") in the test database."""
    result = run("demo", "--db", db_url, "--emailings", "2", "--destinations", "200",
                 "--seed", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    return db_url


def _token_line(result: Result) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("token: ")]
    assert len(lines) == 1, result.stdout
    return lines[0].removeprefix("token: ")


def _all_rows(
    store: Store, kind: str = "clicks", account: str = "demo", **flt: Any
) -> list[tuple[Any, ...]]:
    acct = store.account(account)
    page = store.events(KINDS[kind], Scope(acct.id), Filter(**flt), start=0, limit=10**7,
                        total=True)  # fmt: skip
    assert page.total == len(page.rows)
    return page.rows


# -- tokens ----------------------------------------------------------------------------


def test_token_create_prints_the_token_last_and_it_authenticates(db_url: str, db: Store) -> None:
    result = run("token", "create", "--account", "acme", "--db", db_url)
    assert result.exit_code == 0, result.output
    token = result.stdout.splitlines()[-1]
    assert result.output.splitlines()[-1] == token
    account = db.authenticate(token)
    assert account is not None and account.name == "acme"


def test_token_list_shows_a_hint_and_revoke_ends_the_token(db_url: str, db: Store) -> None:
    token = run("token", "create", "--account", "acme", "--db", db_url).stdout.splitlines()[-1]
    listed = run("token", "list", "--db", db_url)
    assert listed.exit_code == 0
    assert "acme" in listed.stdout and token[:4] in listed.stdout
    assert token not in listed.stdout
    (info,) = db.tokens()
    revoked = run("token", "revoke", str(info.id), "--db", db_url)
    assert revoked.exit_code == 0, revoked.output
    assert db.authenticate(token) is None
    again = run("token", "revoke", str(info.id), "--db", db_url)
    assert again.exit_code == 1
    assert f"No active token with id {info.id}" in again.output


# -- demo ------------------------------------------------------------------------------


def test_demo_makes_every_kind_and_a_working_token(demo_db: str, db: Store) -> None:
    account = db.account("demo")
    stats = db.statistics(Scope(account.id), None, None)
    assert all(total > 0 for total, _ in stats["counts"].values()), stats
    emailings = db.emailings(account.id, start=0, limit=10, total=True)
    assert emailings.total == 2
    assert sum(e.destinations for e in emailings.rows) == 400
    deliveries, opens = stats["counts"]["deliveries"][1], stats["counts"]["impressions"][1]
    assert 0.25 < opens / deliveries < 0.6  # roughly 35-45% open
    for emailing in emailings.rows:
        assert "mailto:" in emailing.html and 'href="#top"' in emailing.html
        urls = [link.url for link in db.links(emailing.id)]
        assert len(urls) >= 8 and any("{$profile.customerid}" in url for url in urls)
        assert all(url.startswith("https://") for url in urls)


def test_demo_prints_a_token_and_a_curl_command(db_url: str, db: Store) -> None:
    result = run("demo", "--db", db_url, "--emailings", "1", "--destinations", "50")
    assert result.exit_code == 0, result.output
    token = _token_line(result)
    account = db.authenticate(token)
    assert account is not None and account.name == "demo"
    assert result.stdout.splitlines()[-1] == (
        f"curl 'http://127.0.0.1:8000/v2/ms/clicks?access_token={token}&limit=5'"
    )


def test_demo_event_values_look_real(demo_db: str, db: Store) -> None:
    impressions = _all_rows(db, "impressions")
    fields = KINDS["impressions"].fields
    devices = {row[fields.index("device")] for row in impressions}
    assert {"desktop", "mobile"} <= devices
    ips = [row[fields.index("ip")] for row in impressions]
    assert any(":" in ip for ip in ips) and any("." in ip for ip in ips)
    errors = _all_rows(db, "errors")
    assert {row[KINDS["errors"].fields.index("errortype")] for row in errors} <= {"hard", "soft"}
    report = _all_rows(db, "abuses")[0][KINDS["abuses"].fields.index("report")]
    assert json.loads(report)["feedback-type"] == "abuse"


def test_demo_data_is_the_same_for_the_same_seed(db: Store) -> None:
    options = demo_data.Options(emailings=2, destinations=60, seed=11, now=1_760_000_000)
    for name in ("a", "b"):
        demo_data.generate(db, db.ensure_account(name, "UTC"), options)
    fields = CLICKS.fields
    keep = [fields.index(f) for f in ("link", "timestamp", "ip", "useragent", "profile")]
    a, b = ([[row[i] for i in keep] for row in _all_rows(db, account=n)] for n in ("a", "b"))
    assert a == b and len(a) > 0


def test_demo_refuses_an_account_that_has_emailings(demo_db: str, db: Store) -> None:
    result = run("demo", "--db", demo_db, "--emailings", "1", "--destinations", "20")
    assert result.exit_code == 1
    assert "already has 2 emailing(s)" in result.output and "--force" in result.output
    forced = run("demo", "--db", demo_db, "--emailings", "1", "--destinations", "20", "--force")
    assert forced.exit_code == 0, forced.output
    account = db.account("demo")
    assert db.emailings(account.id, start=0, limit=0, total=True).total == 3


# -- export ----------------------------------------------------------------------------


def _ndjson_ids(text: str) -> list[int]:
    items = [json.loads(line) for line in text.splitlines()]
    assert all(list(item) == list(CLICKS.fields) for item in items)
    return [int(item["ID"]) for item in items]


def test_export_ndjson_and_csv_are_exactly_the_stored_rows(
    demo_db: str, db: Store, tmp_path: Path
) -> None:
    expected = [row[0] for row in _all_rows(db)]
    assert expected == sorted(expected) and len(expected) > 10
    ndjson = run("export", "clicks", "--account", "demo", "--db", demo_db)
    assert ndjson.exit_code == 0, ndjson.output
    assert _ndjson_ids(ndjson.stdout) == expected

    out = tmp_path / "clicks.csv"
    to_file = run("export", "clicks", "--account", "demo", "--format", "csv", "-o", str(out),
                  "--db", demo_db)  # fmt: skip
    assert to_file.exit_code == 0 and to_file.stdout == ""
    to_stdout = run("export", "clicks", "--account", "demo", "--format", "csv", "--db", demo_db)
    assert out.read_bytes() == to_stdout.stdout_bytes
    rows = list(csv.reader(io.StringIO(out.read_text(), newline="")))
    assert rows[0] == list(CLICKS.fields)
    assert [int(r[0]) for r in rows[1:]] == expected


def test_export_unique_and_time_window(demo_db: str, db: Store) -> None:
    unique = [row[0] for row in _all_rows(db, unique=True)]
    result = run("export", "clicks", "--account", "demo", "--unique", "--db", demo_db)
    ids = _ndjson_ids(result.stdout)
    assert ids == unique and len(unique) < len(_all_rows(db))
    pairs = [(i["destination"], i["link"]) for i in map(json.loads, result.stdout.splitlines())]
    assert len(pairs) == len(set(pairs))

    rows = _all_rows(db)
    times = sorted(row[3] for row in rows)
    begin, end = times[len(times) // 4], times[3 * len(times) // 4]
    zone = ZoneInfo(db.account("demo").timezone)
    bounds = ["--begintime", format_time(begin, zone), "--endtime", format_time(end, zone)]
    window = run("export", "clicks", "--account", "demo", "--db", demo_db, *bounds)
    assert window.exit_code == 0, window.output
    expected = [row[0] for row in rows if begin <= row[3] <= end]  # both bounds inclusive
    assert _ndjson_ids(window.stdout) == expected and 0 < len(expected) < len(rows)


def test_export_other_kinds_follow_their_field_order(demo_db: str) -> None:
    result = run("export", "errors", "--account", "demo", "--format", "csv", "--db", demo_db)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == ",".join(KINDS["errors"].fields)


def test_export_of_an_unknown_account_is_an_error(db_url: str, db: Store) -> None:
    result = run("export", "clicks", "--account", "nobody", "--db", db_url)
    assert result.exit_code != 0
    assert "No account named 'nobody'" in result.output
    assert result.stdout == ""


# -- ingest-mail -----------------------------------------------------------------------


@pytest.fixture
def destination(db: Store) -> tuple[int, str]:
    """(id, message key) of one destination of account "acme"."""
    account = db.ensure_account("acme", "Europe/Amsterdam")
    emailing = db.create_emailing(
        account.id, subject="Spring sale", from_name="Shop", from_email="news@example.com",
        html="<p>Hi</p>", text=None, tags=[], type="mass", links=[],
    )  # fmt: skip
    (dest_id,) = db.create_destinations(account.id, emailing, [{"email": "bob@example.org"}])
    return dest_id, db.destination(account.id, dest_id).message_key


def _dsn(message_key: str) -> bytes:
    """A bounce that names the original only by the Message-ID of its returned headers."""
    return f"""\
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: news@example.com
Subject: Undelivered Mail Returned to Sender
Date: Tue, 05 Mar 2024 10:15:03 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

Your message could not be delivered to one or more recipients.

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; bob@example.org
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected:
    User unknown in local recipient table

--b1
Content-Type: text/rfc822-headers

From: Shop <news@example.com>
To: bob@example.org
Subject: Spring sale
Message-ID: <{message_key}@t.example.com>

--b1--
""".replace("\n", "\r\n").encode()


def _stored(store: Store, kind: str) -> list[tuple[Any, ...]]:
    account = store.account("acme")
    return store.events(KINDS[kind], Scope(account.id), Filter(), start=0, limit=100,
                        total=False).rows  # fmt: skip


def test_ingest_mail_stores_a_bounce_for_the_message_id(
    db_url: str, db: Store, destination: tuple[int, str], tmp_path: Path
) -> None:
    dest_id, key = destination
    path = tmp_path / "bounce.eml"
    path.write_bytes(_dsn(key))
    result = run("ingest-mail", "--account", "acme", "--db", db_url, str(path))
    assert result.exit_code == 0, result.output
    assert f"{path}: 1 event(s)" in result.stdout
    (row,) = _stored(db, "errors")
    item = dict(zip(KINDS["errors"].fields, row, strict=True))
    assert item["destination"] == dest_id
    assert (item["status"], item["errorcode"], item["errortype"]) == ("5.1.1", "550", "hard")


@pytest.mark.parametrize(
    ("sample", "placeholder", "kind"),
    [
        ("dsn/postfix_user_unknown.eml", "ms-Abc123XyZ", "errors"),
        ("arf/yahoo_fbl.eml", "ms-Yf8lCmP1nt", "abuses"),
    ],
)
def test_ingest_mail_reads_the_sample_reports(
    db_url: str, db: Store, destination: tuple[int, str], tmp_path: Path,
    sample: str, placeholder: str, kind: str,
) -> None:  # fmt: skip
    dest_id, key = destination
    raw = (REPORTS / sample).read_bytes()
    assert placeholder.encode() in raw
    path = tmp_path / "report.eml"
    path.write_bytes(raw.replace(placeholder.encode(), key.encode()))
    result = run("ingest-mail", "--account", "acme", "--db", db_url, str(path))
    assert result.exit_code == 0, result.output
    (row,) = _stored(db, kind)
    assert row[KINDS[kind].fields.index("destination")] == dest_id
    again = run("ingest-mail", "--account", "acme", "--db", db_url, str(path))
    assert again.exit_code == 0 and len(_stored(db, kind)) == 1  # the same report counts once


def test_ingest_mail_names_a_malformed_file_and_stores_nothing(
    db_url: str, db: Store, destination: tuple[int, str], tmp_path: Path
) -> None:
    bad = REPORTS / "dsn" / "malformed_no_identifiers.eml"
    result = run("ingest-mail", "--account", "acme", "--db", db_url, str(bad))
    assert result.exit_code == 1
    assert str(bad) in result.stderr and "no identifier" in result.stderr
    assert _stored(db, "errors") == [] and _stored(db, "abuses") == []

    good = tmp_path / "bounce.eml"
    good.write_bytes(_dsn(destination[1]))
    mixed = run("ingest-mail", "--account", "acme", "--db", db_url, str(bad), str(good))
    assert mixed.exit_code == 1  # the good file is stored, the bad one named
    assert str(bad) in mixed.stderr and len(_stored(db, "errors")) == 1


def _bounce_mailbox(tmp_path: Path, key: str) -> list[bytes]:
    """A bounce for `key`, an auto-reply, a bounce for nobody of ours, and a hello."""
    return [
        report_with_key("plain/exim_user_unknown.eml", key),
        report_with_key("autoreply/vacation.eml", key),
        report_with_key("dsn/gmail_no_such_user.eml", "ms-N0tOursAtAll"),
        b"From: someone@example.org\nSubject: hello\n\nHi!\n",
    ]


SUMMARY = "4 message(s): 1 taken (1 event(s) stored), 1 not a bounce, 1 unmatched, 1 unreadable"


def test_ingest_mail_reads_an_mbox(
    db_url: str, db: Store, destination: tuple[int, str], tmp_path: Path
) -> None:
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for raw in _bounce_mailbox(tmp_path, destination[1]):
        box.add(raw)
    box.flush()
    box.close()
    result = run("ingest-mail", "--account", "acme", "--db", db_url, str(tmp_path / "bounces.mbox"))
    assert result.exit_code == 1  # one message could not be read, and says so
    assert result.stdout.strip().splitlines()[-1] == SUMMARY
    assert "bounces.mbox#4" in result.stderr and "bounces.mbox#3" in result.stderr
    (row,) = _stored(db, "errors")
    assert row[KINDS["errors"].fields.index("destination")] == destination[0]


def test_ingest_mail_reads_a_maildir_and_stores_each_message_once(
    db_url: str, db: Store, destination: tuple[int, str], tmp_path: Path
) -> None:
    folder = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in _bounce_mailbox(tmp_path, destination[1]):
        folder.add(raw)
    path = str(tmp_path / "Maildir")
    result = run("ingest-mail", "--account", "acme", "--db", db_url, path)
    assert result.stdout.strip().splitlines()[-1] == SUMMARY
    again = run("ingest-mail", "--account", "acme", "--db", db_url, path)
    assert again.stdout.strip().splitlines()[-1] == SUMMARY.replace("1 event(s)", "0 event(s)")
    assert len(_stored(db, "errors")) == 1
    assert len(folder) == 4  # read, never changed


def test_ingest_mail_from_standard_input_as_a_pipe_delivers_it(
    db_url: str, db: Store, destination: tuple[int, str]
) -> None:
    raw = report_with_key("plain/qmail_no_mailbox.eml", destination[1])
    result = CliRunner().invoke(cli, ["ingest-mail", "--account", "acme", "--db", db_url],
                                input=raw, catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "<stdin>: 1 event(s) for account acme (userunknown)" in result.stdout
    auto = CliRunner().invoke(cli, ["ingest-mail", "--account", "acme", "--db", db_url, "-"],
                              input=report_with_key("autoreply/rfc3834.eml", destination[1]))  # fmt: skip
    assert auto.exit_code == 0 and "not a bounce: an auto-reply" in auto.stdout
    assert len(_stored(db, "errors")) == 1
    hello = b"From: someone@example.org\nSubject: hello\n\nHi!\n"
    for flags, status in (([], 1), (["--pipe"], 0)):
        result = CliRunner().invoke(cli, ["ingest-mail", "--account", "acme", "--db", db_url,
                                          *flags], input=hello)  # fmt: skip
        assert result.exit_code == status and "not a bounce or complaint" in result.stderr


def test_ingest_mail_refuses_a_folder_that_is_no_maildir(db_url: str, tmp_path: Path) -> None:
    result = run("ingest-mail", "--account", "acme", "--db", db_url, str(tmp_path))
    assert result.exit_code == 1 and "not a Maildir" in result.output


def test_ingest_mail_for_an_unknown_account_is_an_error(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bounce.eml"
    path.write_bytes(_dsn("msnothing"))
    result = run("ingest-mail", "--account", "nobody", "--db", db_url, str(path))
    assert result.exit_code == 1 and "No account named 'nobody'" in result.output


# -- the module entry point ------------------------------------------------------------


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailstats", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for command in ("serve", "demo", "export", "token", "ingest-mail", "watch-mailbox"):
        assert command in done.stdout


def test_ingest_mail_pipe_asks_the_mta_to_retry_when_the_database_is_down() -> None:
    # In a process of its own: the connection pool it leaves behind keeps retrying.
    done = subprocess.run(
        [sys.executable, "-m", "mailstats", "ingest-mail", "--pipe", "--account", "acme",
         "--db", "postgresql://postgres@127.0.0.1:1/nothing"],
        input=b"Subject: x\n\nhi\n", capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 75 and b"temporary failure" in done.stderr
