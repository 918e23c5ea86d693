"""`mailstats rescore`: apply changed verdict lists or thresholds to stored clicks and opens."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError
from mailstats.timefmt import parse_time

# Destinations per transaction: each holds the events lock for a moment only.
CHUNK = 200


@click.command()
@click.option("--account", required=True, help="The account whose events to score again.")
@click.option("--since", help="Only messages with clicks or opens from this time on (YYYY-MM-DD"
              " HH:MM:SS, the account's time zone).")  # fmt: skip
@db_option
def rescore(account: str, since: str | None, **flags: Any) -> None:
    """Give every click and open of the account (or of the messages with events since
    --since) its verdict again, by the lists and thresholds the settings name now; counters,
    `unique` flags and statistics follow. The server may keep running meanwhile.

    Example: MAILSTATS_VERDICT_TOO_SOON=20 mailstats rescore --account acme --since 2026-10-01
    """
    settings = load_settings(**flags)
    store = open_db(settings)
    try:
        acct = store.account(account)
        begin = None if since is None else parse_time(since, ZoneInfo(acct.timezone), "since")
        destinations = store.rescore_destinations(acct.id, begin)
        columns = (
            TextColumn("[bold]rescoring[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("messages"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(account, total=len(destinations))
            for at in range(0, len(destinations), CHUNK):
                chunk = destinations[at : at + CHUNK]
                store.rescore(chunk)
                progress.advance(task, len(chunk))
        click.echo(f"rescored the clicks and opens of {len(destinations)} messages")
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
