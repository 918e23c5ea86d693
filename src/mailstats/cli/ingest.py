"""`mailstats ingest-mail FILE...`: bounce (DSN) and complaint (ARF) emails into events."""

from __future__ import annotations

import click

from mailstats import ingest
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError


@click.command(name="ingest-mail")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--account", required=True, help="The account the reports belong to.")
@db_option
def ingest_mail(
    files: tuple[str, ...], account: str, db: str | None, config_file: str | None
) -> None:
    """Parse report emails into errors and abuses; a bad file is named and stores nothing.

    Example: mailstats ingest-mail --account acme bounces/*.eml
    """
    store = open_db(load_settings(db=db, config_file=config_file))
    failed = 0
    try:
        acct = store.account(account)
        for path in files:
            with open(path, "rb") as fh:
                raw = fh.read()
            try:
                count = ingest.ingest_report(store, acct, raw)
            except MailstatsError as exc:
                failed += 1
                click.echo(f"{path}: {exc.message}", err=True)
            else:
                click.echo(f"{path}: {count} event(s)")
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    if failed:
        raise SystemExit(1)
