"""The operators' commands: `user create`, `stats`, `ingest-mail` finding the account from
the report, and JSON log lines, on both backends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from mailstats.cli import cli
from mailstats.cli.serve import RedactTokens
from mailstats.kinds import KINDS
from mailstats.logs import JSONFormatter
from mailstats.store import Event, Filter, Scope, Store, open_store
from tests.helpers import utc

REPORTS = Path(__file__).parent / "fixtures" / "reports"


def run(*args: str, stdin: bytes | str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


@pytest.fixture
def db(db_url: str) -> Iterator[Store]:
    store = open_store(db_url)
    yield store
    store.close()


def emailing_of(db: Store, account: str, recipients: int = 2) -> tuple[int, list[int]]:
    acct = db.ensure_account(account, "Europe/Amsterdam")
    emailing = db.create_emailing(
        acct.id, subject=f"News for {account}", from_name="Shop", from_email="n@example.com",
        html="<p>Hi</p>", text=None, tags=[], type="mass", links=[],
    )  # fmt: skip
    items = [{"email": f"{account}{n}@example.org"} for n in range(recipients)]
    return emailing, db.create_destinations(acct.id, emailing, items)


def test_user_create_keeps_a_hash_and_signs_in(db_url: str, db: Store) -> None:
    result = run("user", "create", "--account", "acme", "--name", "ann", "--db", db_url,
                 stdin="correct horse battery\ncorrect horse battery\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Created user 'ann'" in result.stdout
    signer = db.users.with_password("ann", "correct horse battery")
    assert signer is not None and signer.account.name == "acme"
    assert db.users.with_password("ann", "wrong horse battery") is None
    again = run("user", "create", "--account", "acme", "--name", "ann", "--password-stdin",
                "--db", db_url, stdin="another password\n")  # fmt: skip
    assert again.exit_code == 1 and "exists already" in again.output
    short = run("user", "create", "--account", "acme", "--name", "bob", "--password-stdin",
                "--db", db_url, stdin="short\n")  # fmt: skip
    assert short.exit_code == 1 and "at least 10 characters" in short.output


def test_stats_prints_the_emailings_figures(db_url: str, db: Store) -> None:
    emailing, (a, b) = emailing_of(db, "acme")
    acct = db.account("acme")
    ts = utc(2026, 10, 1, 9)
    events = [
        Event(KINDS["deliveries"], bytes([n]) * 16, ts, acct.id, emailing, d, 0, (1,))
        for n, d in enumerate((a, b), 1)
    ]
    events.append(Event(KINDS["clicks"], b"c" * 16, ts, acct.id, emailing, a, 0, (None, None)))
    db.insert_events(events)
    result = run("stats", str(emailing), "--db", db_url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("Delivered" in x and "2" in x and "100.0%" in x for x in lines)
    assert any("Clicked" in x and "1" in x and "50.0%" in x for x in lines)
    assert "News for acme" in result.stdout
    wrong = run("stats", str(emailing), "--account", "other", "--db", db_url)
    assert wrong.exit_code == 1 and f"No emailing {emailing}" in wrong.output
    assert run("stats", "999999", "--db", db_url).exit_code == 1


def _bounce(db: Store, account: str, tmp_path: Path) -> tuple[Path, int]:
    _, (dest, _) = emailing_of(db, account)
    key = db.destination(db.account(account).id, dest).message_key
    raw = (REPORTS / "dsn" / "postfix_user_unknown.eml").read_bytes()
    path = tmp_path / f"{account}.eml"
    path.write_bytes(raw.replace(b"ms-Abc123XyZ", key.encode()))
    return path, dest


def _errors(db: Store, account: str) -> list[int]:
    acct = db.account(account)
    rows = db.events(KINDS["errors"], Scope(acct.id), Filter(), start=0, limit=10, total=False)
    return [row[KINDS["errors"].fields.index("destination")] for row in rows.rows]


def test_ingest_mail_finds_each_reports_account(db_url: str, db: Store, tmp_path: Path) -> None:
    acme, acme_dest = _bounce(db, "acme", tmp_path)
    other, other_dest = _bounce(db, "other", tmp_path)
    result = run("ingest-mail", "--db", db_url, str(acme), str(other))
    assert result.exit_code == 0, result.output
    assert f"{acme}: 1 event(s) for account acme" in result.stdout
    assert f"{other}: 1 event(s) for account other" in result.stdout
    assert _errors(db, "acme") == [acme_dest] and _errors(db, "other") == [other_dest]


def test_ingest_mail_account_filter_refuses_other_accounts(
    db_url: str, db: Store, tmp_path: Path
) -> None:
    acme, _ = _bounce(db, "acme", tmp_path)
    other, _ = _bounce(db, "other", tmp_path)
    result = run("ingest-mail", "--account", "acme", "--db", db_url, str(other), str(acme))
    assert result.exit_code == 1
    assert f"{other}: the report belongs to another account than 'acme'" in result.stderr
    assert _errors(db, "other") == [] and len(_errors(db, "acme")) == 1


def test_ingest_mail_reads_a_report_from_standard_input(
    db_url: str, db: Store, tmp_path: Path
) -> None:
    acme, dest = _bounce(db, "acme", tmp_path)
    result = run("ingest-mail", "--db", db_url, "-", stdin=acme.read_bytes())
    assert result.exit_code == 0, result.output
    assert _errors(db, "acme") == [dest]
    unregistered = (REPORTS / "dsn" / "postfix_user_unknown.eml").read_bytes()
    unknown = run("ingest-mail", "--db", db_url, "-", stdin=unregistered)
    assert unknown.exit_code == 1 and "names no known destination" in unknown.stderr
    assert _errors(db, "acme") == [dest]


def test_json_log_lines_keep_the_access_token_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v2/ms/clicks?access_token=s3cret&limit=1", "1.1", 200),
        None,
    )  # fmt: skip
    assert RedactTokens().filter(record)
    line = orjson.loads(JSONFormatter().format(record))
    assert line["path"] == "/v2/ms/clicks?access_token=[redacted]&limit=1"
    assert (line["method"], line["status"], line["level"]) == ("GET", 200, "info")
    assert "s3cret" not in JSONFormatter().format(record)
    plain = logging.LogRecord("mailstats.web", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    assert orjson.loads(JSONFormatter().format(plain))["message"] == "boom x"
