"""Privacy commands: `mailstats account show|set|scrub`, `erase`, `subject-export`, `retention`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from zoneinfo import ZoneInfo

import click
import orjson

from mailstats.cli.common import db_option, load_settings, open_db
from mailstats.errors import MailstatsError
from mailstats.store import Store, privacy, subjects


def _open(db: str | None, config_file: str | None) -> Store:
    return open_db(load_settings(db=db, config_file=config_file))


@contextmanager
def _opened(db: str | None, config_file: str | None) -> Iterator[Store]:
    """The store, closed after; a refusal of the store's is a one-line error."""
    store = _open(db, config_file)
    try:
        yield store
    except MailstatsError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


def _echo_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@click.group()
def account() -> None:
    """An account's privacy settings: what is kept of IP addresses, user agents, and how long.

    Example: mailstats account set --account acme --ip truncated --retention clicks=90
    """


@account.command()
@click.option("--account", "name", required=True, help="Whose settings.")
@db_option
def show(name: str, db: str | None, config_file: str | None) -> None:
    """Print the settings as JSON (retention null: kept for ever).

    Example: mailstats account show --account acme
    """
    with _opened(db, config_file) as store:
        _echo_json(privacy.get(store, store.account(name).id).as_json())


@account.command(name="set")
@click.option("--account", "name", required=True, help="Whose settings.")
@click.option("--ip", type=click.Choice(privacy.IP_MODES), help="Keep IP addresses in full, "
              "truncated (IPv4 /24, IPv6 /48) or not at all.")  # fmt: skip
@click.option("--useragent", type=click.Choice(privacy.USERAGENT_MODES),
              help="Keep user agents in full, or parsed only (device, OS, client).")  # fmt: skip
@click.option("--retention", multiple=True, metavar="KIND=DAYS",
              help="Days a kind keeps IPs and user agents; DAYS `forever` for no limit.")  # fmt: skip
@db_option
def set_(name: str, ip: str | None, useragent: str | None, retention: tuple[str, ...],
         db: str | None, config_file: str | None) -> None:  # fmt: skip
    """Change settings; they apply to events derived from now on (`scrub` for stored ones).

    Example: mailstats account set --account acme --ip none --useragent parsed
    """
    changes: dict[str, Any] = {}
    if ip is not None:
        changes["ip"] = ip
    if useragent is not None:
        changes["useragent"] = useragent
    if retention:
        days: dict[str, Any] = {}
        for item in retention:
            kind, _, value = item.partition("=")
            if value == "forever":
                days[kind] = None
            elif value.isdigit():
                days[kind] = int(value)
            else:
                raise click.UsageError(f"--retention {item}: KIND=DAYS or KIND=forever")
        changes["retention"] = days
    with _opened(db, config_file) as store:
        _echo_json(privacy.put(store, store.account(name).id, changes).as_json())


@account.command()
@click.option("--account", "name", required=True, help="Whose events.")
@db_option
def scrub(name: str, db: str | None, config_file: str | None) -> None:
    """Apply the account's ip and useragent settings to the events already stored.

    Example: mailstats account scrub --account acme
    """
    with _opened(db, config_file) as store:
        acct = store.account(name)
        with click.progressbar(length=1, label="Scrubbing", file=sys.stderr) as bar:

            def progress(done: int, span: int) -> None:
                bar.length = max(span, 1)
                bar.update(done - bar.pos)

            changed = privacy.scrub(store, acct.id, progress=progress)
        click.echo(f"{changed} events changed")


@click.command()
@click.option("--account", "name", required=True, help="The account the address is erased in.")
@click.option("--email", required=True, help="The address.")
@db_option
def erase(name: str, email: str, db: str | None, config_file: str | None) -> None:
    """Erase an address: its destinations' address, profile and fields, their events' IP
    addresses and user agents. Events and statistics stay. Prints a receipt (JSON).

    Example: mailstats erase --account acme --email ann@example.org
    """
    with _opened(db, config_file) as store:
        acct = store.account(name)
        receipt = subjects.erase(store, acct.id, email, via="cli")
        _echo_json(receipt.as_json(ZoneInfo(acct.timezone)))


@click.command(name="subject-export")
@click.option("--account", "name", required=True, help="The account to look in.")
@click.option("--email", required=True, help="The address.")
@db_option
def subject_export(name: str, email: str, db: str | None, config_file: str | None) -> None:
    """Print every stored item about an address as one JSON document (subject access).

    Example: mailstats subject-export --account acme --email ann@example.org > ann.json
    """
    with _opened(db, config_file) as store:
        acct = store.account(name)
        found = subjects.access(store, acct.id, email)
        _echo_json(subjects.document(found, ZoneInfo(acct.timezone)))


@click.command()
@db_option
def retention(db: str | None, config_file: str | None) -> None:
    """Strip what is past every account's retention once (`serve` does it periodically).

    Example: mailstats retention --db mailstats.db
    """
    store = _open(db, config_file)
    try:
        done = privacy.retention_pass(store)
        click.echo(f"{done.events} events and {done.destinations} destinations stripped")
    finally:
        store.close()
