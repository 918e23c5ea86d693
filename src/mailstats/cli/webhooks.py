"""`mailstats webhook add|list|remove|enable|deliveries|replay`: an account's push endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError
from mailstats.kinds import KINDS
from mailstats.settings import Settings
from mailstats.store import Account, Store
from mailstats.timefmt import format_time
from mailstats.webhooks.network import check_url

F = TypeVar("F", bound=Callable[..., Any])


def _common(func: F) -> F:
    func = click.option("--account", required=True, help="Whose endpoints.")(func)
    return db_option(func)


@contextmanager
def _opened(db: str | None, config_file: str | None, account: str) -> Iterator[
    tuple[Settings, Store, Account]
]:  # fmt: skip
    settings = load_settings(db=db, config_file=config_file)
    store = open_db(settings)
    try:
        yield settings, store, store.account(account)
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


@click.group()
def webhook() -> None:
    """Endpoints that get the account's events pushed, signed as Standard Webhooks.

    Example: mailstats webhook add https://hooks.example.com/mailstats --account acme
    """


@webhook.command()
@click.argument("url")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(KINDS)),
              help="A kind to push (repeat for more) [default: all].")  # fmt: skip
@click.option("--bots", type=click.Choice(["include", "exclude"]), default="include",
              show_default=True, help="Whether machine events are pushed.")  # fmt: skip
@_common
def add(url: str, kinds: tuple[str, ...], bots: str, account: str, db: str | None,
        config_file: str | None) -> None:  # fmt: skip
    """Add an endpoint; prints its ID and its signing secret, shown this once.

    Example: mailstats webhook add https://hooks.example.com/in --kind clicks --account acme
    """
    with _opened(db, config_file, account) as (settings, store, acct):
        check_url(url, settings.webhook_allowed_networks)
        webhook_id, secret = store.webhooks.create(acct.id, url, kinds or list(KINDS), bots)
        click.echo(f"{webhook_id}\t{secret}")
        click.echo("Keep the secret: it is not shown again.", err=True)


@webhook.command(name="list")
@_common
def list_(account: str, db: str | None, config_file: str | None) -> None:
    """Every endpoint: ID, state, URL, kinds, events waiting, last event delivered, failures.

    Example: mailstats webhook list --account acme
    """
    with _opened(db, config_file, account) as (_, store, acct):
        for h in store.webhooks.all(acct.id, 0, 1_000_000).rows:
            state = "enabled" if h.enabled else "disabled"
            click.echo(f"{h.id}\t{state}\t{h.url}\t{','.join(h.kinds)}\tbots={h.bots}"
                       f"\tpending={h.pending}\tdelivered={h.delivered_id}"
                       f"\tfailures={h.failures}")  # fmt: skip


@webhook.command()
@click.argument("webhook_id", type=int)
@_common
def remove(webhook_id: int, account: str, db: str | None, config_file: str | None) -> None:
    """Remove an endpoint and the events waiting for it.

    Example: mailstats webhook remove 3 --account acme
    """
    with _opened(db, config_file, account) as (_, store, acct):
        store.webhooks.remove(acct.id, webhook_id)
        click.echo(f"Removed webhook {webhook_id}.")


@webhook.command()
@click.argument("webhook_id", type=int)
@_common
def enable(webhook_id: int, account: str, db: str | None, config_file: str | None) -> None:
    """Enable an endpoint again after it was disabled by failures; its batch is retried now.

    Example: mailstats webhook enable 3 --account acme
    """
    with _opened(db, config_file, account) as (_, store, acct):
        store.webhooks.set_enabled(acct.id, webhook_id, True)
        click.echo(f"Enabled webhook {webhook_id}.")


@webhook.command()
@click.argument("webhook_id", type=int)
@click.option("--limit", type=int, default=20, show_default=True, help="Attempts to show.")
@_common
def deliveries(webhook_id: int, limit: int, account: str, db: str | None,
               config_file: str | None) -> None:  # fmt: skip
    """Recent attempts, newest first: time, message ID, attempt, events, status, ms, error.

    Example: mailstats webhook deliveries 3 --account acme
    """
    with _opened(db, config_file, account) as (_, store, acct):
        tz = ZoneInfo(acct.timezone)
        for d in store.webhooks.deliveries(acct.id, webhook_id, 0, limit).rows:
            span = f"{d.first_id}-{d.last_id}"
            click.echo(f"{format_time(int(d.at), tz)}\t{d.message_id}\t#{d.attempt}\t{span}"
                       f"\t{d.status or '-'}\t{d.latency_ms:.0f}ms\t{d.error or ''}")  # fmt: skip


@webhook.command()
@click.argument("webhook_id", type=int)
@click.option("--since-id", type=click.IntRange(0), required=True,
              help="Push again the events with IDs above this one.")  # fmt: skip
@_common
def replay(webhook_id: int, since_id: int, account: str, db: str | None,
           config_file: str | None) -> None:  # fmt: skip
    """Push events again, from an event ID on (a running server's dispatcher sends them).

    Example: mailstats webhook replay 3 --since-id 41200 --account acme
    """
    with _opened(db, config_file, account) as (_, store, acct):
        queued = store.webhooks.replay(acct.id, webhook_id, since_id)
        click.echo(f"Queued {queued} events for webhook {webhook_id}.")
