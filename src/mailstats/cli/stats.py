"""`mailstats stats EMAILING`: an emailing's figures as a table in the terminal."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.store import Scope
from mailstats.timefmt import format_time

_ROWS = (
    ("deliveries", "Delivered"),
    ("impressions", "Opened"),
    ("clicks", "Clicked"),
    ("errors", "Bounced"),
    ("abuses", "Complaints"),
    ("unsubscribes", "Unsubscribed"),
)


@click.command()
@click.argument("emailing", type=int)
@click.option("--account", help="Refuse an emailing of any other account.")
@db_option
def stats(emailing: int, account: str | None, db: str | None, config_file: str | None) -> None:
    """Totals, unique recipients and rates of one emailing.

    Example: mailstats stats 12 --db mailstats.db
    """
    from zoneinfo import ZoneInfo

    store = open_db(load_settings(db=db, config_file=config_file))
    try:
        owner = store.charts.account_of_emailing(emailing)
        if owner is None or (account is not None and owner.name != account):
            raise click.ClickException(f"No emailing {emailing}")
        found = store.emailing(owner.id, emailing)
        figures = store.statistics(Scope(owner.id, emailing_id=emailing), None, None)
    finally:
        store.close()
    recipients = found.destinations
    table = Table(
        title=f"{found.subject} (emailing {emailing}, account {owner.name})",
        caption=f"sent {format_time(found.created_at, ZoneInfo(owner.timezone))} "
        f"{owner.timezone}; rates are unique recipients over {recipients:,} recipients",
    )
    table.add_column("")
    table.add_column("Total", justify="right")
    table.add_column("Unique", justify="right")
    table.add_column("Rate", justify="right")
    for name, label in _ROWS:
        total, unique = figures["counts"][name]
        rate = f"{100 * unique / recipients:.1f}%" if recipients else "-"
        table.add_row(label, f"{total:,}", f"{unique:,}", rate)
    retries, retried = figures["retries"]
    table.add_row("Delivered after a retry", f"{retries:,}", f"{retried:,}", "")
    Console().print(table)
