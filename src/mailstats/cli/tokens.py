"""`mailstats token create|list|revoke`: access tokens for the API."""

from __future__ import annotations

import datetime as dt

import click
from rich.console import Console
from rich.table import Table

from mailstats.cli.common import db_option, load_settings, open_db


@click.group()
def token() -> None:
    """Create, list and revoke API access tokens."""


@token.command()
@click.option("--account", required=True, help="The account's name; created if it does not exist.")
@db_option
def create(account: str, db: str | None, config_file: str | None) -> None:
    """Create a token; it is printed once, on the last line.

    Example: mailstats token create --account acme --db mailstats.db
    """
    settings = load_settings(db=db, config_file=config_file)
    store = open_db(settings)
    try:
        value = store.create_token(account, settings.timezone)
    finally:
        store.close()
    click.echo(
        f"Created a token for account {account!r}. Keep it: it is not shown again.", err=True
    )
    click.echo(value)


@token.command(name="list")
@db_option
def list_(db: str | None, config_file: str | None) -> None:
    """List tokens (their first characters only).

    Example: mailstats token list --db mailstats.db
    """
    store = open_db(load_settings(db=db, config_file=config_file))
    try:
        rows = store.tokens()
    finally:
        store.close()
    table = Table("id", "account", "starts with", "created", "revoked")
    for row in rows:
        table.add_row(
            str(row.id), row.account, row.hint + "…", _when(row.created_at), _when(row.revoked_at)
        )
    Console().print(table)


@token.command()
@click.argument("token_id", type=int)
@db_option
def revoke(token_id: int, db: str | None, config_file: str | None) -> None:
    """Revoke a token by its id (see `mailstats token list`).

    Example: mailstats token revoke 3 --db mailstats.db
    """
    store = open_db(load_settings(db=db, config_file=config_file))
    try:
        done = store.revoke_token(token_id)
    finally:
        store.close()
    if not done:
        raise click.ClickException(f"No active token with id {token_id}")
    click.echo(f"Revoked token {token_id}.")


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
