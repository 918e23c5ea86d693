"""`mailstats suppressions list|add|remove`: the addresses the relay refuses."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import click

from mailstats.addresses import valid
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError
from mailstats.store import suppressions as sup
from mailstats.timefmt import format_time


@click.group()
def suppressions() -> None:
    """The suppression list: hard bounces, complaints, unsubscribes and manual entries.

    Example: mailstats suppressions list --account acme
    """


@suppressions.command(name="list")
@click.option("--account", required=True, help="Whose list.")
@db_option
def list_(account: str, db: str | None, config_file: str | None) -> None:
    """Every suppressed address: email, reason, time (the account's zone), destination.

    Example: mailstats suppressions list --account acme
    """
    settings = load_settings(db=db, config_file=config_file)
    store = open_db(settings)
    try:
        acct = store.account(account)
        for entry in sup.list_all(store, acct.id):
            when = format_time(entry.ts, ZoneInfo(acct.timezone))
            dest = "-" if entry.destination_id is None else str(entry.destination_id)
            click.echo(f"{entry.email}\t{entry.reason}\t{when}\t{dest}")
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


@suppressions.command()
@click.argument("emails", nargs=-1, required=True)
@click.option("--account", required=True, help="Whose list.")
@db_option
def add(emails: tuple[str, ...], account: str, db: str | None, config_file: str | None) -> None:
    """Put addresses on the list by hand.

    Example: mailstats suppressions add --account acme ann@example.org
    """
    bad = [e for e in emails if not valid(e)]
    if bad:
        raise click.UsageError(f"Not an email address: {bad[0]}")
    store = open_db(load_settings(db=db, config_file=config_file))
    try:
        acct = store.account(account)
        for email in emails:
            sup.add(store, acct.id, email)
            click.echo(f"{email}: suppressed")
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


@suppressions.command()
@click.argument("emails", nargs=-1, required=True)
@click.option("--account", required=True, help="Whose list.")
@db_option
def remove(emails: tuple[str, ...], account: str, db: str | None, config_file: str | None) -> None:
    """Take addresses off the list; a later bounce, complaint or unsubscribe puts one back.

    Example: mailstats suppressions remove --account acme ann@example.org
    """
    store = open_db(load_settings(db=db, config_file=config_file))
    missing = 0
    try:
        acct = store.account(account)
        for email in emails:
            if sup.remove(store, acct.id, email):
                click.echo(f"{email}: removed")
            else:
                missing += 1
                click.echo(f"{email}: not on the list", err=True)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    if missing:
        raise SystemExit(1)
