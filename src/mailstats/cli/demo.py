"""`mailstats demo`: fill a database with realistic data and hand out a token to read it."""

from __future__ import annotations

import shlex
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import click
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from mailstats import demo_data
from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError

KIND_COLUMNS = ("deliveries", "errors", "impressions", "clicks", "unsubscribes", "abuses")


class _Bars:
    """demo_data's progress as two rich bars: recipients registered, events written."""

    def __init__(self, progress: Progress, recipients: int) -> None:
        self.progress = progress
        self.recipients = progress.add_task("Recipients", total=recipients)
        self.events = progress.add_task("Events", total=None)

    def __call__(self, recipients: int, events: int) -> None:
        self.progress.update(self.recipients, completed=recipients)
        self.progress.update(self.events, completed=events)

    def finish(self, events: int) -> None:
        self.progress.update(self.recipients, completed=self.progress.tasks[0].total)
        self.progress.update(self.events, total=events, completed=events)


@click.command()
@click.option("--account", default="demo", show_default=True, help="The account to fill.")
@click.option(
    "--emailings", type=click.IntRange(1, 1000), default=6, show_default=True,
    help="How many emailings to send.",
)  # fmt: skip
@click.option(
    "--destinations", type=click.IntRange(1, 5_000_000),
    default=demo_data.Options.destinations, show_default=True, help="Recipients per emailing.",
)  # fmt: skip
@click.option(
    "--days", type=click.IntRange(1, 3650), default=42, show_default=True,
    help="The emailings go out over this many days, ending now.",
)  # fmt: skip
@click.option("--seed", type=int, help="The same seed gives the same data (relative to now).")
@click.option("--force", is_flag=True, help="Add to an account that already has emailings.")
@db_option
def demo(
    account: str,
    emailings: int,
    destinations: int,
    days: int,
    seed: int | None,
    force: bool,
    db: str | None,
    config_file: str | None,
) -> None:
    """Fill a database with realistic emailings, recipients and all six kinds of event.

    Prints a summary, an access token (on a line of its own, after "token: ") and a
    curl command to try it with.

    Example: mailstats demo --db demo.db && mailstats serve --db demo.db
    """
    settings = load_settings(db=db, config_file=config_file)
    store = open_db(settings)
    try:
        acct = store.ensure_account(account, settings.timezone)
        existing = store.emailings(acct.id, start=0, limit=0, total=True).total
        if existing and not force:
            raise click.ClickException(
                f"Account {account!r} in {settings.db} already has {existing} emailing(s). "
                "Use --force to add demo data anyway, or --account for another account."
            )
        options = demo_data.Options(emailings, destinations, days, seed)
        stderr = Console(stderr=True)
        columns = (SpinnerColumn(), TextColumn("{task.description:<10}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn())  # fmt: skip
        with Progress(*columns, console=stderr) as progress:
            bars = _Bars(progress, emailings * destinations)
            summary = demo_data.generate(store, acct, options, bars)
            bars.finish(summary.stored)
        token = store.create_token(account, acct.timezone)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()
    _print_summary(summary, ZoneInfo(acct.timezone))
    api = f"http://{_client_host(settings.host)}:{settings.port}"
    click.echo(f"\nStart the server:  mailstats serve --db {shlex.quote(settings.db)}")
    click.echo(f"token: {token}")
    click.echo(f"curl '{api}/v2/ms/clicks?access_token={token}&limit=5'")


def _print_summary(summary: demo_data.Summary, tz: ZoneInfo) -> None:
    console = Console()
    numbers = ("recipients", "opened", "clicked")
    mailings = Table(
        "ID", Column("sent", min_width=10), Column("subject", max_width=26, no_wrap=True),
        *(Column(name, justify="right", min_width=len(name)) for name in numbers),
        title="Emailings", box=box.SIMPLE,
    )  # fmt: skip
    recipients = sum(e.destinations for e in summary.emailings)
    for e in summary.emailings:
        delivered = e.uniques["deliveries"] or 1
        sent = datetime.fromtimestamp(e.sent, tz).strftime("%Y-%m-%d")
        mailings.add_row(
            str(e.id), sent, e.subject, f"{e.destinations:,}",
            f"{e.uniques['impressions'] / delivered:.0%}", f"{e.uniques['clicks'] / delivered:.0%}",
        )  # fmt: skip
    console.print(mailings)
    events = Table(
        "kind", *(Column(name, justify="right") for name in ("events", "recipients", "share")),
        title="Events", box=box.SIMPLE,
    )  # fmt: skip
    totals = summary.totals
    uniques = sum((e.uniques for e in summary.emailings), Counter[str]())
    for kind in KIND_COLUMNS:
        share = uniques[kind] / (recipients or 1)
        events.add_row(kind, f"{totals[kind]:,}", f"{uniques[kind]:,}", f"{share:.2%}")
    events.add_section()
    events.add_row("total", f"{sum(totals.values()):,}", f"{recipients:,}", "")
    console.print(events)
    click.echo(f"{summary.stored:,} events written in {summary.seconds:.1f} s.")


def _client_host(host: str) -> str:
    """Where a local curl reaches a server listening on `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
