"""`mailstats ingest-mail FILE...`: bounce (DSN) and complaint (ARF) emails into events."""

from __future__ import annotations

import sys

import click

from mailstats import ingest
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import InvalidParameter, MailstatsError


@click.command(name="ingest-mail")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--account",
    help="Only reports of this account; a report of another is refused and stores nothing.",
)
@db_option
def ingest_mail(
    files: tuple[str, ...], account: str | None, db: str | None, config_file: str | None
) -> None:
    """Parse report emails into errors and abuses; a bad file is named and stores nothing.

    The account is found from each report itself (the message it names), so a mail server
    can pipe every bounce to one command ("-" reads one report from standard input).

    Example: mailstats ingest-mail bounces/*.eml
    """
    store = open_db(load_settings(db=db, config_file=config_file))
    failed = 0
    try:
        if account is not None:
            store.account(account)  # an unknown account name is a usage error, not a report's
        for path in files:
            raw = _read(path)
            try:
                owner = ingest.report_account(store, raw)
                if account is not None and owner.name != account:
                    raise InvalidParameter(
                        f"the report belongs to another account than {account!r}"
                    )
                count = ingest.ingest_report(store, owner, raw)
            except MailstatsError as exc:
                failed += 1
                click.echo(f"{path}: {exc.message}", err=True)
            else:
                click.echo(f"{path}: {count} event(s) for account {owner.name}")
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    if failed:
        raise SystemExit(1)


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as fh:
        return fh.read()
